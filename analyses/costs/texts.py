"""Costs of the analyses over a set of texts or task examples (erasure, neurons, counting, the
Laundry List, Mamba's state cosine) and of the weight-only ones."""

from __future__ import annotations

from analyses.cost import Cost, Dims
from analyses.costs.terms import (
    DRAWN, SHRINK_TEXTS, _cache, _components, _cost, _fw, _heads, _logits, _mine, _suffix_share,
)
from analyses.costs.engine import _layer_of, _mamba_base

# ---- texts of a corpus or a task -----------------------------------------------------------------

def _corpus(d: Dims, p: dict, kept_units: float) -> float:
    """A streamed pass: one batch's forward and captures, plus ``kept_units`` floats per text position."""
    batch = min(p.get("batch") or 16, d.items)
    return _fw(d, batch) + _cache(d, batch, _components(d) / d.n_layers + 3) + d.items * d.seq * kept_units * 4


def _erasure(p: dict, d: Dims, forwards: float, floor: float | None = None) -> Cost:
    batch = min(p.get("batch") or 16, d.items)  # every component's output is held twice (output, projection)
    memory = _corpus(d, p, _components(d) + 3 * d.n_layers) + 0.8 * _cache(d, batch, _components(d) / d.n_layers + 3)
    return _cost(memory, d, _components(d), **_mine(forwards, floor), shrink=SHRINK_TEXTS)


def _input_resample(p: dict, d: Dims) -> Cost:
    """The clean run, then a run per measured position with the writer's input there resampled,
    whole; the floor runs only the layers from the writer's and the positions from that one on."""
    first = min(p.get("start") or 0, d.seq - 1)
    positions = [d.seq - 1] if p.get("last") else range(first, d.seq)
    layers = (d.n_layers - _layer_of(p.get("writer"), d)) / d.n_layers
    return _erasure(p, d, d.items * (1 + len(positions)),
                    d.items * (1 + layers * sum((d.seq - q) / d.seq for q in positions)))


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
    return _cost(memory, d, _components(d), **_mine(forwards, floor),
                 shrink=SHRINK_TEXTS + " or fewer top texts (--top)")


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
