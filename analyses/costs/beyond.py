"""Costs of generation, steering, probes and SAE features."""

from __future__ import annotations

from analyses.cost import Cost, Dims
from analyses.costs.terms import SHRINK_TEXTS, _cache, _cost, _fw, _logits, _mine, _suffix_share


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
    """Both prompt sets through the model up to the vector's layer, in batches of 32."""
    hook = str(p.get("hook") or f"blocks.{p.get('layer') or 0}.")
    layer = int(hook.split(".")[1]) if hook.startswith("blocks.") and hook.split(".")[1].isdigit() else d.n_layers - 1
    share = (min(layer, d.n_layers - 1) + 1) / d.n_layers  # the runs stop after the vector's block
    return _cost(_fw(d, min(d.items, 32)) + _cache(d, min(d.items, 32), 1 / d.n_layers), d, d.d_model,
                 **_mine(2 * d.items * share), shrink="fewer pairs (--n)")


def _steering_sweep(p: dict, d: Dims) -> Cost:
    """Both sets for the vectors, the corrupted run capturing every layer's residual stream, then
    each layer resumed once with every scale in its own copy of the batch."""
    k = len(str(p.get("scales") or "-4,-2,-1,0,1,2,4").split(","))
    rows = k * d.items
    memory = _fw(d, rows) + _cache(d, d.items, 1) + _logits(d, rows, d.seq)
    return _cost(memory, d, d.n_layers * k, **_mine(3 * d.items + rows * d.n_layers * _suffix_share(d)),
                 shrink="fewer pairs (--n), layers (--layers) or scales (--scales)")
