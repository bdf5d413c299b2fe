"""Congruence: the token each MLP neuron writes most directly (definitions: ``analyses.neurons``)."""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.results import Table


SPACE_MARKERS = ("Ġ", "▁")


def word_token_mask(tokenizer, d_vocab: int) -> Tensor:
    """[d_vocab] bool: the word tokens (module docstring). Ids past the tokenizer's vocabulary
    (padding rows of the unembedding) are never words."""
    n = min(len(tokenizer), d_vocab)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(tokenizer.all_special_ids)
    marked = any(isinstance(p, str) and p.startswith(SPACE_MARKERS) for p in pieces)
    mask = torch.zeros(d_vocab, dtype=torch.bool)
    for i, p in enumerate(pieces):
        if not isinstance(p, str) or i in special:
            continue
        mask[i] = (p.startswith(SPACE_MARKERS) and len(p) > 2) if marked else True
    return mask


def neuron_congruence(model: HookedModel, layer: int, mask: Tensor | None = None,
                      chunk: int | None = None, neurons: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """(best congruence [d_mlp], its token id [d_mlp]) over the tokens in ``mask`` (all if None),
    walking the vocabulary ``chunk`` tokens at a time (default: ~16M products per chunk); only
    the rows of ``neurons`` when given."""
    shape = model.shape
    _check_layer(model, layer)
    _, _, w_out, _ = model.writer_weights(layer)
    w_lnf, _ = model.final_norm_params()
    if neurons is not None:
        w_out = w_out[list(neurons)]
    device = model.unembed_device()
    w = w_out.float().to(device)  # [neurons, d_model]
    if shape.norm == "layernorm":
        w = w - w.mean(-1, keepdim=True)
    w = w * w_lnf.float().to(device)  # fold the final norm's weight into the neuron side
    vocab = shape.d_vocab
    chunk = chunk or max(1, 2**24 // max(1, shape.d_mlp))
    best = torch.full((w.shape[0],), -math.inf, device=device)
    arg = torch.zeros(w.shape[0], dtype=torch.long, device=device)
    total = torch.zeros(w.shape[0], device=device)
    for start in range(0, vocab, chunk):
        cols = model.unembed_rows(start, start + chunk).float().to(device)  # [c, d_model]
        c = w @ cols.T  # [neurons, c]
        total += c.sum(-1)
        if mask is not None:
            c = c.masked_fill(~mask[start : start + chunk].to(device)[None], -math.inf)
        value, index = c.max(-1)
        better = value > best
        best = torch.where(better, value, best)
        arg = torch.where(better, index + start, arg)
    if mask is not None and not bool(mask.any()):
        raise BadInput("no token of the vocabulary is a word token")
    return (best - total / vocab).cpu(), arg.cpu()


def congruence_table(model: HookedModel, tokenizer, layers: Sequence[int] | None = None, top: int = 20,
                     words_only: bool = True) -> Table:
    """The ``top`` neurons of each layer by congruence, with the token each predicts."""
    shape = model.shape
    if shape.family == "mamba":
        raise BadInput("Mamba has no MLP neurons")
    layers = list(range(shape.n_layers)) if not layers else [_check_layer(model, lay) for lay in layers]
    mask = word_token_mask(tokenizer, shape.d_vocab) if words_only else None
    labels, cols = [], {"congruence": [], "token": [], "token_id": [], "layer": [], "neuron": []}
    for layer in layers:
        best, arg = neuron_congruence(model, layer, mask)
        for n in best.argsort(descending=True)[:top].tolist():
            labels.append(f"L{layer}N{n}")
            cols["congruence"].append(float(best[n]))
            cols["token"].append(tokenizer.decode([int(arg[n])], clean_up_tokenization_spaces=False))
            cols["token_id"].append(int(arg[n]))
            cols["layer"].append(layer)
            cols["neuron"].append(n)
    meta = {"layers": layers, "top": top, "words_only": words_only,
            "word_tokens": int(mask.sum()) if mask is not None else shape.d_vocab}
    return Table("neuron-congruence", labels, cols, meta)


def _check_layer(model: HookedModel, layer: int) -> int:
    n = model.shape.n_layers
    if not -n <= layer < n:
        raise BadInput(f"layer {layer} is outside the model's {n} layers")
    return layer % n


def check_neuron(model: HookedModel, layer: int, neuron: int) -> tuple[int, int]:
    if model.shape.family == "mamba":
        raise BadInput("Mamba has no MLP neurons")
    layer = _check_layer(model, layer)
    if not 0 <= neuron < model.shape.d_mlp:
        raise BadInput(f"--neuron {neuron}: the MLP has {model.shape.d_mlp} neurons (0..{model.shape.d_mlp - 1})")
    return layer, neuron


def predicted_token(model: HookedModel, layer: int, neuron: int) -> int:
    """The token a neuron's congruence is highest for (over the whole vocabulary)."""
    _, arg = neuron_congruence(model, layer, neurons=[neuron])
    return int(arg[0])
