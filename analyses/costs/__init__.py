"""Each analysis's cost formula: peak memory beyond the loaded model, forwards (and backwards) it
makes, and its floor (the passes it cannot do without for its inputs), from ``analyses.cost.Dims``.

Units: a forward is one sequence through the whole model (a run from layer l counts (L - l) / L,
a run over the positions from p on (S - p) / S), so the floors compare across analyses. Memory in
bytes; the constants are fitted on CPU by ``bench/estimate.py``. Torch-free.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyses.cost import Cost, Dims
from analyses.costs.terms import _components, _heads, _suffix_share
from analyses.costs.engine import (
    _attrib, _conv_slices, _eap, _eap_circuit, _eap_curve, _eap_pos, _eval, _greedy, _inhibition,
    _name_arith, _patch, _path_patch, _prompt, _removal, _upto,
)
from analyses.costs.texts import (
    LIST_POSITIONS, _ablations, _congruence, _count_attention, _erasure, _examples, _input_resample, _neuron_baseline,
    _neurons, _recall_edit, _state_cosine, _weights,
)
from analyses.costs.beyond import _generate, _probe, _sae, _steering_sweep, _steering_vector

COSTS: dict[str, Callable[[dict, Dims], Cost]] = {
    "dla": _prompt, "logit-lens": _prompt, "attention": _prompt, "neuron-heads-prompt": _prompt,
    "inhibition": _inhibition, "inhibition-task": _inhibition,
    "patch": _patch, "attrib": _attrib, "eap": _eap, "eap-curve": _eap_curve, "path-patch": _path_patch,
    "eval": _eval,
    "mamba-removal": _removal, "mamba-greedy": _greedy, "conv-slices": _conv_slices, "eap-pos": _eap_pos,
    "eap-circuit": _eap_circuit, "name-arith": _name_arith,
    "erasure-pr": lambda p, d: _erasure(p, d, d.items), "erasure-stream": lambda p, d: _erasure(p, d, d.items),
    "erasure-scatter": lambda p, d: _erasure(p, d, d.items),
    "erasure-causal": lambda p, d: _erasure(p, d, 2 * d.items, d.items * (1 + _suffix_share(d))),
    "erasure-effect": lambda p, d: _erasure(p, d, d.items * (1 + _components(d)),
                                            d.items * (1 + _components(d) * _suffix_share(d))),
    "erasure-prompts": lambda p, d: _erasure(p, d, 2 * d.items, d.items * (1 + _suffix_share(d))),
    "neuron-congruence": _congruence,
    "neuron-max-acts": lambda p, d: _neurons(p, d, attributed=False), "neuron-heads": lambda p, d: _neurons(p, d),
    "neuron-explain": lambda p, d: _neurons(p, d),
    "neuron-ablation": lambda p, d: _neurons(p, d, *_ablations(p, d), attributed=False),
    "count-heads": lambda p, d: _examples(d, d.items * (1 + _heads(d)), rows=_heads(d)),  # + each head alone
    "count-attention": _count_attention,
    "count-swap": lambda p, d: _examples(d, d.items * (1 + 2 * _heads(d)), rows=_heads(d)),
    "count-combine": lambda p, d: _examples(d, d.items * 4, d.items * (1 + 3 * _suffix_share(d)), rows=3),
    "recall-edit": _recall_edit,
    "composition": _weights, "head-spectra": _weights, "channels": _weights,
    "train-toy": lambda p, d: Cost(64 * 2**20, 0, 0, shrink="fewer steps (--steps)"),
    "generate": lambda p, d: _generate(p, d), "steering-vector": lambda p, d: _steering_vector(p, d),
    "steering-sweep": lambda p, d: _steering_sweep(p, d),
    "sae-features": lambda p, d: _sae(p, d, 1), "sae-dla": lambda p, d: _sae(p, d, 1),
    "sae-max-acts": lambda p, d: _sae(p, d, d.items, 1 + min(p.get("top") or 20, d.items)),
    "sae-corpus": lambda p, d: _sae(p, d, d.items, 0, corpus=True),
    "probe": lambda p, d: _probe(p, d),
    "erasure-verdict": lambda p, d: _erasure(p, d, 2 * d.items, d.items * (1 + _suffix_share(d))),  # PR, then removed
    "erasure-modified": lambda p, d: _erasure(p, d, d.items),
    "erasure-input": _input_resample,
    "erasure-importance": lambda p, d: _erasure(p, d, d.items * (2 + _heads(d)), d.items * (1 + (1 + _heads(d)) * _suffix_share(d))),
    "neuron-baseline": lambda p, d: _neuron_baseline(p, d),
    # The receiver's attention is read in runs that stop after its layer; the edits' scores need the logits.
    "positional-subspace": lambda p, d: _examples(d, d.items * _upto(p.get("receiver"), d)),
    "centroid-traversal": lambda p, d: _examples(d, d.items * (1 + LIST_POSITIONS) * _upto(p.get("receiver"), d),
                                                 rows=LIST_POSITIONS),
    "centroid-replace": lambda p, d: _examples(d, d.items * (_upto(p.get("receiver"), d) + 3), rows=2),  # fit, 3 scored
    "state-cosine": lambda p, d: _state_cosine(p, d),
}

def _generic(analysis: Any, p: dict, d: Dims) -> Cost:
    """An analysis without a formula, by its kind of inputs: pairs like patching at one cell per
    layer, texts like a streamed corpus pass, anything else like one forward per input."""
    names = {q.name for q in analysis.params}
    if {"clean", "corrupt"} <= names:
        return _patch({**p, "all_pos": True}, d)
    if "batch" in names:
        return _erasure(p, d, d.items)
    return _examples(d, d.items)


def cost_of(analysis: Any, params: dict[str, Any], d: Dims) -> Cost:
    formula = COSTS.get(analysis.name)
    return formula(params, d) if formula is not None else _generic(analysis, params, d)
