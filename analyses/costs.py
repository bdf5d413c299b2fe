"""Each analysis's cost formula: peak memory beyond the loaded model, forwards (and backwards) it
makes, and its floor (the passes it cannot do without for its inputs), from ``analyses.cost.Dims``.

Units: a forward is one sequence through the whole model (a run from layer l counts (L - l) / L,
a run over the positions from p on (S - p) / S), so the floors compare across analyses. Memory in
bytes; the constants are fitted on CPU by ``bench/estimate.py``. Torch-free.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any

from analyses.cost import Cost, Dims

ITEM = 2_500  # Python bytes per input (a pair, an example or a text: strings, token lists, objects)
DRAWN = 4_500  # Python bytes per held-out example: a test split is drawn from ten times as many candidates
ROW = 400  # Python bytes per row of a result table
RUN = 8 * 2**20  # what any run allocates besides its tensors (allocator slack, temporaries)
SWEEP_ROWS = 256  # rows per forward of a batched sweep (patching's rows_per_forward)
SHRINK_PAIRS = "fewer pairs (--n), fewer positions (--positions) or heads (--heads)"
SHRINK_TEXTS = "fewer texts (--n) or a smaller --batch"


def _fw(d: Dims, rows: float, seq: float | None = None) -> float:
    """Bytes one forward of ``rows`` rows holds at its widest (a block's temporaries, no grad)."""
    s = d.seq if seq is None else seq
    per_pos = (10 * d.d_model + 4 * d.d_mlp + 3 * d.n_heads * s if d.attention
               else 10 * d.d_model + 8 * d.d_inner + 3 * d.d_inner * d.d_state)
    return rows * s * per_pos * d.dtype_bytes


def _graph(d: Dims, rows: float) -> float:
    """Bytes a forward with gradients keeps for its backward pass (every block's activations)."""
    return d.n_layers * _fw(d, rows) * 0.95


def _cache(d: Dims, rows: float, units: float, seq: float | None = None) -> float:
    """Bytes of ``units`` [rows, seq, d_model] activations captured at every layer."""
    return rows * (d.seq if seq is None else seq) * d.n_layers * units * d.d_model * d.dtype_bytes


def _logits(d: Dims, rows: float, positions: float) -> float:
    return rows * positions * d.d_vocab * 4


def _heads(d: Dims) -> int:
    return d.n_heads if d.attention else 1


def _components(d: Dims) -> int:
    """Heads and MLPs (Mamba: layers)."""
    return d.n_layers * (d.n_heads + 1) if d.attention else d.n_layers


def _edges(d: Dims) -> int:
    """Edges of the EAP graph: writers (input, heads, MLPs) to later readers (q/k/v, MLPs, logits)."""
    h = _heads(d)
    writers, readers = 1 + d.n_layers * (h + 1), d.n_layers * (3 * h + 1) + 1
    return writers * readers // 2


def _suffix_share(d: Dims) -> float:
    """Mean share of the later layers a patched run from a given layer runs."""
    return (d.n_layers + 1) / (2 * d.n_layers)


def _mine(forwards: float, floor: float | None = None, **kw: Any) -> dict[str, Any]:
    return {"forwards": forwards, "floor": forwards if floor is None else floor, **kw}


def _cost(memory: float, d: Dims, rows: float = 0, **passes: Any) -> Cost:
    return Cost(RUN + memory + ITEM * d.items + ROW * rows, **passes)


# ---- one prompt --------------------------------------------------------------------------------------

def _prompt(p: dict, d: Dims) -> Cost:
    rows = {"head": d.n_layers * _heads(d), "neuron": d.n_layers * d.d_mlp}.get(p.get("by"), 2 * d.n_layers)
    unembeds = d.n_layers if "pos" in p and "by" not in p else 1  # the logit lens unembeds every layer
    memory = _fw(d, 1) + _logits(d, 1, d.seq) + _cache(d, 1, 4 + d.d_mlp / d.d_model) + _logits(d, unembeds, 1)
    layer = p.get("layer")  # attention and a neuron's heads stop after their layer
    share = 1.0 if "answer" in p or not isinstance(layer, int) else (layer % d.n_layers + 1) / d.n_layers
    return _cost(memory, d, rows, **_mine(share), shrink="a shorter prompt")


def _layer_of(head: Any, d: Dims) -> int:
    """The layer of a head written L{l}H{h} (the last layer when it cannot be read)."""
    text = str(head or "").upper()
    try:
        return min(int(text[1:].split("H", 1)[0]), d.n_layers - 1)
    except ValueError:
        return d.n_layers - 1


def _inhibition(p: dict, d: Dims) -> Cost:
    # The prompt, then each sender component projected out, in rows that stop at the receiver's layer.
    runs = 1 + d.d_head * (_layer_of(p.get("receiver"), d) + 1) / d.n_layers
    memory = _fw(d, d.d_head) * d.items + _cache(d, d.items, 2)
    return _cost(memory, d, d.d_head, **_mine(runs * d.items), shrink="a shorter prompt or fewer prompts (--n)")


# ---- pairs -------------------------------------------------------------------------------------------

def _cells(p: dict, d: Dims) -> int:
    site = p.get("site") or ""
    heads = len(str(p["heads"]).split(",")) if p.get("heads") else d.n_heads if site.startswith("head_") else 1
    pos = 1 if p.get("all_pos") else len(str(p["positions"]).split(",")) if p.get("positions") else d.seq
    return max(1, heads) * pos


def _patch(p: dict, d: Dims) -> Cost:
    n, cells = d.items, _cells(p, d)
    units = 4 + (d.n_heads * d.seq / d.d_model if p.get("site") == "head_pattern" else 0)
    rows = max(n, min(SWEEP_ROWS, cells * n))
    memory = 2 * _cache(d, n, units * 0.75) + 2 * _logits(d, n, d.seq) + 0.5 * _fw(d, rows) + _cache(d, rows, 1)
    sweep = n * cells * _suffix_share(d) * (0.5 if not p.get("all_pos") else 1)
    # The floor: only cells at or after the first differing position change anything, and a patched row
    # runs from its layer and its position on.
    floor = 2 * n + sweep
    if not p.get("all_pos") and not p.get("positions"):  # every position swept: count those from d.diff on
        heads = cells / d.seq
        floor = 2 * n + n * heads * _suffix_share(d) * sum((d.seq - q) / d.seq for q in range(d.diff, d.seq))
    return _cost(memory, d, d.n_layers * cells, **_mine(2 * n + sweep, floor), shrink=SHRINK_PAIRS)


def _attrib(p: dict, d: Dims) -> Cost:
    n = d.items
    memory = _graph(d, n) + 2 * _cache(d, n, 2) + 2 * _logits(d, n, d.seq)
    return _cost(memory, d, d.n_layers * d.seq, **_mine(2 * n, backwards=n, floor_backwards=n), shrink=SHRINK_PAIRS)


def _eap_scores(p: dict, d: Dims) -> tuple[float, dict[str, float]]:
    n, steps = d.items, p.get("ig") or 0
    qkv = 3 * _heads(d) if d.attention else 1
    memory = 1.8 * (_graph(d, n) + _cache(d, n, qkv + _heads(d) + 1)) + 2 * _logits(d, n, d.seq)
    if p.get("positional"):
        memory += _edges(d) * d.seq * 8
    back = steps or 1
    return memory, {"forwards": 2 * n + steps * n, "floor": 2 * n + steps * n, "backwards": back * n,
                    "floor_backwards": back * n}


def _eap(p: dict, d: Dims) -> Cost:
    memory, passes = _eap_scores(p, d)
    if p.get("top") is not None or p.get("threshold") is not None:
        memory *= 2  # the circuit's run, every edge's reader input patched, holds as much again
        passes = {**passes, "forwards": passes["forwards"] + d.items, "floor": passes["floor"] + d.items}
    return _cost(memory, d, _edges(d), **passes, shrink=SHRINK_PAIRS.split(",")[0] + " or fewer IG steps (--ig)")


def _eap_curve(p: dict, d: Dims) -> Cost:
    memory, passes = _eap_scores(p, d)
    ks = len(str(p["ks"]).split(",")) if p.get("ks") else 3 * math.ceil(math.log10(_edges(d))) + 1
    memory *= 2  # the circuits' runs (as eap with --top)
    extra = 2 * ks * d.items  # each k raw and pruned
    passes = {**passes, "forwards": passes["forwards"] + extra, "floor": passes["floor"] + extra}
    return _cost(memory, d, _edges(d), **passes, shrink="fewer pairs (--n) or fewer k (--ks)")


def _path_patch(p: dict, d: Dims) -> Cost:
    n = d.items
    memory = 3 * _cache(d, n, 4) + 3 * _logits(d, n, d.seq) + _fw(d, n)
    return _cost(memory, d, 3, **_mine(4 * n, 3 * n), shrink=SHRINK_PAIRS.split(",")[0])


def _drawn(p: dict, d: Dims) -> float:
    return DRAWN * d.items if p.get("split", "test") == "test" and not p.get("pairs") else 0.0


def _eval(p: dict, d: Dims) -> Cost:
    batch = min(d.items, 128)
    memory = _fw(d, batch) + 2 * _logits(d, batch, d.seq) + _drawn(p, d)  # the logits and their softmax
    return _cost(memory, d, 8, **_mine(d.items), shrink="fewer prompts (--n)")


# ---- Mamba -------------------------------------------------------------------------------------------

def _mamba_base(d: Dims, rows: float) -> float:
    return 2 * _cache(d, d.items, 2) + 2 * _logits(d, d.items, d.seq) + _fw(d, rows)


def _removal(p: dict, d: Dims) -> Cost:
    n, L = d.items, d.n_layers
    return _cost(_mamba_base(d, n), d, L, **_mine(2 * n + L * n, 2 * n + n * L * _suffix_share(d)),
                 shrink="fewer pairs (--n)")


def _greedy(p: dict, d: Dims) -> Cost:
    n, L = d.items, d.n_layers
    trials = L * (L + 1) / 2  # each step tries every layer still in the set
    return _cost(_mamba_base(d, n), d, L, **_mine(2 * n + trials * n, 2 * n + trials * n * _suffix_share(d)),
                 shrink="fewer pairs (--n)")


def _conv_slices(p: dict, d: Dims) -> Cost:
    n = d.items
    layers = len(str(p["layers"]).split(",")) if p.get("layers") else d.n_layers
    runs = layers * 4 * d.seq * n  # 4: the conv kernel's width on the shipped Mambas
    rows = min(runs, d.seq * n)
    return _cost(_mamba_base(d, rows), d, layers * 4 * d.seq,
                 **_mine(2 * n + runs, 2 * n + runs * _suffix_share(d)), shrink="fewer pairs (--n) or layers (--layers)")


def _eap_pos(p: dict, d: Dims) -> Cost:
    memory, passes = _eap_scores({**p, "positional": True}, d)
    return _cost(memory, d, p.get("top") or 30, **passes, shrink="fewer pairs (--n) or fewer IG steps (--ig)")


def _eap_circuit(p: dict, d: Dims) -> Cost:
    memory, passes = _eap_scores(p, d)
    extra = d.items * (math.ceil(math.log2(_edges(d))) + 2)  # a binary search over k
    memory *= 2  # the circuits' runs (as eap with --top)
    passes = {**passes, "forwards": passes["forwards"] + extra, "floor": passes["floor"] + extra}
    return _cost(memory, d, 20, **passes, shrink="fewer pairs (--n) or fewer IG steps (--ig)")


def _name_arith(p: dict, d: Dims) -> Cost:
    n, n_avg = p.get("n") or 200, p.get("n_avg") or 2000
    edits = n * 3 * 3  # every (slot, average slot)
    share = 1 / d.n_layers  # the edit is at the chosen layer: only the later layers rerun (default: the last)
    return _cost(_fw(d, 64) + _cache(d, 64, 1), d, 9, **_mine(n_avg + n + edits, n_avg + n + edits * share),
                 shrink="fewer prompts (--n, --n-avg)")


# ---- texts of a corpus or a task -----------------------------------------------------------------

def _corpus(d: Dims, p: dict, kept_units: float) -> float:
    """A streamed pass: one batch's forward and captures, plus ``kept_units`` floats per text position."""
    batch = min(p.get("batch") or 16, d.items)
    return _fw(d, batch) + _cache(d, batch, _components(d) / d.n_layers + 3) + d.items * d.seq * kept_units * 4


def _erasure(p: dict, d: Dims, forwards: float, floor: float | None = None) -> Cost:
    batch = min(p.get("batch") or 16, d.items)  # every component's output is held twice (output, projection)
    memory = _corpus(d, p, _components(d) + 3 * d.n_layers) + 0.8 * _cache(d, batch, _components(d) / d.n_layers + 3)
    return _cost(memory, d, _components(d), **_mine(forwards, floor), shrink=SHRINK_TEXTS)


def _neurons(p: dict, d: Dims, extra: float = 0, extra_floor: float | None = None, attributed: bool = True,
             neurons: int = 1) -> Cost:
    """The corpus scan (up to the neuron's layer), then per neuron: its top texts' trimming search, one
    cached pass per trimmed text for the head attribution (``attributed``), and ``extra`` passes."""
    layer = p.get("layer", -1)
    layer = layer % d.n_layers if isinstance(layer, int) else d.n_layers - 1
    share = (layer + 1) / d.n_layers  # the scan and the trimming stop after the neuron's layer
    top = min(p.get("top") or 40, d.items)
    trim = top * _trim_depth(d) * share  # the starts a one-by-one search scores, down to the kept one
    per_text = top if attributed else 0
    forwards = d.items * share + neurons * (2 * trim + per_text + extra)  # chunks of 1, 2, 4, ...: < 2x the starts
    # The floor counts one start per text (the kept one): the rest of the search depends on the texts
    # (bench.analyses adds what a one-by-one search would have scored).
    floor = d.items * share + neurons * (top * share + per_text + (extra if extra_floor is None else extra_floor))
    memory = _corpus(d, p, 1) + _cache(d, top, _heads(d))
    return _cost(memory, d, _components(d), **_mine(forwards, floor), shrink=SHRINK_TEXTS + " or fewer top texts (--top)")


def _trim_depth(d: Dims) -> float:
    """Starts a text's trimming scores, one by one from its max-activating token back to the latest
    that keeps the share: unknown before the run, taken as half the text (a max as likely anywhere)."""
    return max(1.0, d.seq / 2)


def _congruence(p: dict, d: Dims) -> Cost:
    layers = len(str(p["layers"]).split(",")) if p.get("layers") else d.n_layers
    memory = d.d_mlp * min(d.d_vocab, 4096) * 4 * 2 + d.d_vocab * 64
    return _cost(memory, d, layers * d.d_mlp, **_mine(0), shrink="fewer layers (--layers)")


# ---- examples of a task --------------------------------------------------------------------------

def _examples(d: Dims, runs: float, floor: float | None = None, rows: float = 16) -> Cost:
    chunk = min(d.items, 256)
    memory = (_fw(d, chunk) + _cache(d, d.items, 8 * _heads(d) / max(1, d.n_layers)) + _logits(d, chunk, d.seq)
              + DRAWN * d.items)
    return _cost(memory, d, rows, **_mine(runs, floor), shrink="fewer examples (--n)")


def _count_attention(p: dict, d: Dims) -> Cost:
    grid = len(str(p.get("w01s") or "").split(",")) * len(str(p.get("w02s") or "").split(","))
    return _examples(d, d.items * (1 + grid), rows=grid)


def _recall_edit(p: dict, d: Dims) -> Cost:
    comps = p.get("comps") or d.d_head
    scales = len(str(p.get("scales") or "0").split(","))
    candidates = d.n_layers * d.n_heads * comps * scales
    n = d.items
    return _examples(d, n + candidates * n + 2 * n, n + candidates * n * _suffix_share(d) + 2 * n, rows=8)


def _weights(p: dict, d: Dims) -> Cost:
    """Weight-only analyses: the heads' factored circuits and their pairwise scores."""
    heads = d.n_layers * max(1, d.n_heads)
    draws = p.get("draws") or 1
    memory = heads * d.d_model * max(1, d.d_head) * 4 * 12 + heads * heads * 8 + draws * d.d_model * d.d_head * 4
    return _cost(memory, d, heads * max(1, d.d_head), **_mine(0), shrink="fewer heads (--show, --sender)")


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
    "erasure-input": lambda p, d: _erasure(p, d, 2 * d.items, d.items * (1 + _suffix_share(d))),
    "erasure-importance": lambda p, d: _erasure(p, d, d.items * (2 + _heads(d)), d.items * (1 + (1 + _heads(d)) * _suffix_share(d))),
    "neuron-baseline": lambda p, d: _neuron_baseline(p, d),
    "positional-subspace": lambda p, d: _examples(d, d.items),
    "centroid-traversal": lambda p, d: _examples(d, d.items * (1 + LIST_POSITIONS), rows=LIST_POSITIONS),
    "centroid-replace": lambda p, d: _examples(d, 4 * d.items, rows=2),  # fit, before, after, the control
    "state-cosine": lambda p, d: _state_cosine(p, d),
}

LIST_POSITIONS = 10  # positions a list task's centroid traversal visits (the Laundry List's longest list)


def _ablations(p: dict, d: Dims) -> tuple[float, float]:
    """Passes of a neuron's head ablations over its top texts, used and floor: each head's run is
    whole, though only the layers from the head's on change."""
    runs = min(p.get("top") or 40, d.items) * _heads(d)
    return runs * d.n_layers, runs * _suffix_share(d)


def _neuron_baseline(p: dict, d: Dims) -> Cost:
    """Both groups of k neurons through neuron-ablation's pipeline, after one shared corpus pass (a
    neuron with no head in the band skips its ablations: the floor counts them for every neuron)."""
    return _neurons(p, d, *_ablations(p, d), neurons=2 * (p.get("k") or 8))


def _state_cosine(p: dict, d: Dims) -> Cost:
    """One run capturing each layer's input terms and states [b, s, d_inner, d_state] (twice)."""
    layers = len(str(p["layers"]).split(",")) if p.get("layers") else d.n_layers
    states = 2 * layers * d.items * d.seq * d.d_inner * max(d.d_state, 1) * 4
    return _cost(_mamba_base(d, d.items) + states, d, layers * d.seq, **_mine(d.items), shrink="fewer pairs (--n) or layers")


SAE_WIDTH = 32  # d_sae / d_model assumed before the SAE's folder is read (public residual SAEs: 8 to 64)


def _sae(p: dict, d: Dims, texts: float, trims: float = 0, corpus: bool = False) -> Cost:
    """SAE analyses: its weights, one batch's features [b, s, d_sae] (three copies while encoding and
    reducing), a forward; a scan over texts stops after the SAE's layer (counted whole: unknown here)."""
    d_sae = SAE_WIDTH * d.d_model
    rows = min(p.get("batch") or 1, d.items)
    memory = 2 * d.d_model * d_sae * 4 + 3 * rows * d.seq * d_sae * 4 + _fw(d, rows) + (d_sae * 80 if corpus else 0)
    return _cost(memory, d, p.get("top") or 20, **_mine(texts + trims * d.seq / 16), shrink=SHRINK_TEXTS)


def _probe(p: dict, d: Dims) -> Cost:
    """Probes: the kept activations [layers, positions, texts, d_model], a float64 copy while fitting."""
    layers = len(str(p["layers"]).split(",")) if p.get("layers") else d.n_layers
    positions = len(str(p.get("positions") or "-1").split(","))
    kept = layers * positions * d.items * d.d_model * 4
    memory = kept + 3 * d.items * d.d_model * 8 + _fw(d, min(p.get("batch") or 64, d.items))
    return _cost(memory, d, layers, **_mine(d.items), shrink="fewer texts (--n), layers or positions")


def _generate(p: dict, d: Dims) -> Cost:
    """The prompt once, then one position per new token (each ``1 / length`` of a forward), with
    the cache of every position so far: keys and values per layer, or Mamba's state."""
    new = p.get("max_tokens") or 20
    cache = (2 * d.n_layers * d.d_model * (d.seq + new) if d.attention
             else d.n_layers * d.d_inner * (d.d_state + 4)) * 4
    forwards = 1 + sum(1 / (d.seq + i) for i in range(1, new))
    return _cost(_fw(d, 1) + cache + _logits(d, 1, 1), d, new, **_mine(forwards), shrink="fewer tokens (--max-tokens)")


def _steering_vector(p: dict, d: Dims) -> Cost:
    """Both prompt sets through the model to the vector's layer, in batches of 32."""
    return _cost(_fw(d, min(d.items, 32)) + _cache(d, min(d.items, 32), 1 / d.n_layers), d, d.d_model,
                 **_mine(2 * d.items), shrink="fewer pairs (--n)")


def _steering_sweep(p: dict, d: Dims) -> Cost:
    """Both sets for the vectors, the corrupted run capturing every layer's residual stream, then
    each layer resumed once with every scale in its own copy of the batch."""
    k = len(str(p.get("scales") or "-4,-2,-1,0,1,2,4").split(","))
    rows = k * d.items
    memory = _fw(d, rows) + _cache(d, d.items, 1) + _logits(d, rows, d.seq)
    return _cost(memory, d, d.n_layers * k, **_mine(3 * d.items + rows * d.n_layers * _suffix_share(d)),
                 shrink="fewer pairs (--n), layers (--layers) or scales (--scales)")


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
