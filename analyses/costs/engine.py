"""Costs of the engine's analyses: one prompt, clean/corrupted pairs (patching, attribution, EAP),
evaluation and Mamba's."""

from __future__ import annotations

import math
from typing import Any

from analyses.cost import Cost, Dims
from analyses.costs.terms import (
    DRAWN, SHRINK_PAIRS, SWEEP_ROWS, _cache, _cost, _edges, _fw, _graph, _heads, _logits, _mine, _suffix_share,
)


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


def _upto(head: Any, d: Dims) -> float:
    """The share of the layers a run that stops after ``head``'s layer runs."""
    return (_layer_of(head, d) + 1) / d.n_layers


def _inhibition(p: dict, d: Dims) -> Cost:
    # The prompt, then each sender component projected out, all in rows that stop at the receiver's layer.
    runs = (1 + d.d_head) * _upto(p.get("receiver"), d)
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
    layers = d.n_layers * _suffix_share(d)  # a patched row runs from its layer on: summed over the layers
    sweep = n * cells * layers * (0.5 if not p.get("all_pos") else 1)
    # The floor: only cells at or after the first differing position change anything, and a patched row
    # runs from its layer and its position on.
    floor = 2 * n + sweep
    if not p.get("all_pos") and not p.get("positions"):  # every position swept: count those from d.diff on
        heads = cells / d.seq
        floor = 2 * n + n * heads * layers * sum((d.seq - q) / d.seq for q in range(d.diff, d.seq))
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
    """4 slices (the conv kernel's width on the shipped Mambas) per layer and position; a patched row
    runs from its layer on, and a cell whose source equals the unpatched activation is skipped: every
    position from the pairs' first difference on past layer 0, in layer 0 those whose tokens differ
    (unknown here: the floor counts none, the estimate all)."""
    n = d.items
    try:
        chosen = [int(x) for x in str(p["layers"]).split(",")] if p.get("layers") else range(d.n_layers)
    except ValueError:  # the analysis says what is wrong with them
        chosen = range(d.n_layers)
    cells = 4 * max(1, d.seq - d.diff) * n
    runs = cells * sum((d.n_layers - layer % d.n_layers) / d.n_layers for layer in chosen)
    floor = cells * sum((d.n_layers - layer % d.n_layers) / d.n_layers for layer in chosen if layer % d.n_layers)
    return _cost(_mamba_base(d, min(runs, d.seq * n)), d, len(chosen) * 4 * d.seq,
                 **_mine(2 * n + runs, 2 * n + floor), shrink="fewer pairs (--n) or layers (--layers)")


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
