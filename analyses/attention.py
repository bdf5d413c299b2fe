"""The attention pattern of one head on one prompt: which earlier tokens each position reads.

Captured from ``blocks.{l}.attn.hook_pattern`` alone (the pattern as the model applies it: causal,
windowed where the model slides a window, softmaxed in fp32), and the run stops after that layer,
so asking for a pattern costs at most one forward and keeps one [heads, pos, pos] tensor.
"""

from __future__ import annotations

from torch import Tensor

from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.results import Grid


def _index(i: int, size: int, what: str) -> int:
    """``i`` in ``[-size, size)`` as a non-negative index (-1 is the last, as in Python)."""
    if not -size <= i < size:
        raise BadInput(f"{what} must be between 0 and {size - 1} (negative counts from the end, down to {-size}); got {i}")
    return i % size


def attention_pattern(model: HookedModel, ids: Tensor, layer: int, head: int, token_labels: list[str]) -> Grid:
    """The softmaxed attention pattern of ``head`` at ``layer`` on the prompt ``ids`` [1, pos]:
    a [query, key] Grid whose rows sum to 1. ``layer`` and ``head`` count from the end when
    negative. ``head`` is a query head (GQA models have n_heads of them, sharing key heads)."""
    shape = model.shape
    if shape.n_heads == 0:
        raise BadInput(f"attention patterns need an attention model; {shape.family} has no attention heads")
    if ids.ndim != 2 or ids.shape[0] != 1 or ids.shape[1] == 0:
        raise BadInput(f"attention patterns take one non-empty prompt, token ids [1, pos]; got shape {list(ids.shape)}")
    if len(token_labels) != ids.shape[1]:
        raise BadInput(f"{len(token_labels)} token labels for {ids.shape[1]} tokens")
    layer = _index(layer, shape.n_layers, "layer")
    head = _index(head, shape.n_heads, "head")
    name = f"blocks.{layer}.attn.hook_pattern"
    pattern = model.run(ids, capture=[name], stop_at_layer=layer + 1).cache[name][0, head]  # [query, key]
    labels = [f"{i}:{t}" for i, t in enumerate(token_labels)]
    meta = {"layer": layer, "head": head, "label": f"L{layer}H{head}", "tokens": list(token_labels)}
    return Grid("attention", ["query", "key"], {"query": labels, "key": list(labels)}, pattern.float().cpu().tolist(), meta)
