"""Head -> neuron attribution at the last token, and which heads are active on a prompt
(definitions: ``analyses.neurons``)."""

from __future__ import annotations

from collections.abc import Iterator, Sequence

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.labels import head_label
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Table


def neuron_reader(model: HookedModel, layer: int, neuron: int) -> Tensor:
    """v with ``pre-activation part = (x . v) / s_ln2`` for a residual write x: ``w_ln2 * W_in[:, n]``
    (the gate's on gated MLPs), centred for LayerNorm (so that x's mean drops out)."""
    device = model.unembed_device()
    w = model.mlp_norm_params(layer)[0].to(device)
    v = w * model.mlp_in_columns(layer, [neuron])[:, 0].float().to(device)
    return v - v.mean() if model.shape.norm == "layernorm" else v


def head_layers(model: HookedModel, layer: int) -> list[int]:
    """Layers whose heads can write into the MLP input of ``layer``."""
    return list(range(layer if model.shape.parallel_attn_mlp else layer + 1))


def _last(x: Tensor, last: Tensor) -> Tensor:
    return x[torch.arange(x.shape[0], device=x.device), last.to(x.device)]


def head_attribution(model: HookedModel, ids: Tensor, lengths: Sequence[int], layer: int, neuron: int) -> Tensor:
    """[b, heads] attribution of every counted head (``head_layers``, layer-major) to the neuron's
    pre-activation at each row's last real token (right-padded ``ids``)."""
    layers = head_layers(model, layer)
    last = torch.tensor([n - 1 for n in lengths])
    z_last: dict[int, Tensor] = {}
    scale: list[Tensor] = []

    def keep_z(lay: int):
        def f(x: Tensor) -> Tensor:
            z_last[lay] = _last(x, last).float()  # [b, heads, d_head]
            return x
        return f

    def keep_scale(x: Tensor) -> Tensor:
        scale.append(_last(x, last).float())  # [b, 1]
        return x

    ivs = [Intervention(f"blocks.{lay}.attn.hook_z", op="fn", fn=keep_z(lay)) for lay in layers]
    ivs.append(Intervention(f"blocks.{layer}.ln2.hook_scale", op="fn", fn=keep_scale))
    model.run(ids, interventions=ivs, stop_at_layer=layer + 1)
    v = neuron_reader(model, layer, neuron)
    out = []
    for lay in layers:
        w_o = model.writer_weights(lay)[0].float().to(v.device)  # [heads, d_head, d_model]
        out.append((z_last[lay].to(v.device) * (w_o @ v)).sum(-1))  # [b, heads]
    return (torch.cat(out, -1) / scale[0].to(v.device)).cpu()


def head_labels(model: HookedModel, layer: int) -> list[str]:
    return [head_label(lay, h) for lay in head_layers(model, layer) for h in range(model.shape.n_heads)]


def active_heads(attr: Tensor) -> Tensor:
    """[b, heads] bool: attribution > mean + 2 sigma over the heads of that prompt (population sigma)."""
    mean = attr.mean(-1, keepdim=True)
    std = attr.std(-1, keepdim=True, unbiased=False)
    return attr > mean + 2 * std


def padded(prompts: list[list[int]], batch: int, pad: int = 0) -> Iterator[tuple[Tensor, list[int]]]:
    """Token-id prompts ``batch`` at a time, right-padded: (ids [b, s], each prompt's length)."""
    from analyses.tokens import pad_batch

    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        yield pad_batch(chunk, pad)[0], [len(p) for p in chunk]


def prompts_attribution(model: HookedModel, prompts: list[list[int]], layer: int, neuron: int,
                        batch: int = 16, pad: int = 0) -> Tensor:
    """``head_attribution`` of many prompts, ``batch`` at a time: [n, heads]."""
    out = [head_attribution(model, ids, lengths, layer, neuron) for ids, lengths in padded(prompts, batch, pad)]
    return torch.cat(out) if out else torch.zeros(0, len(head_labels(model, layer)))


def heads_table(model: HookedModel, attr: Tensor, layer: int, neuron: int, low: float = 0.25,
                high: float = 0.75, meta: dict | None = None) -> Table:
    """Per head: mean attribution, how often it is active, and whether that rate is in [low, high]."""
    labels = head_labels(model, layer)
    active = active_heads(attr).float()
    rate = active.mean(0) if len(attr) else torch.zeros(len(labels))
    cols = {"mean_attribution": attr.mean(0).tolist() if len(attr) else [0.0] * len(labels),
            "active_rate": rate.tolist(),
            "selected": [bool(low <= r <= high) for r in rate.tolist()]}
    return Table("neuron-heads", labels, cols, {"layer": layer, "neuron": neuron, "n_prompts": len(attr),
                                                  "band": [low, high], **(meta or {})})


def selected_heads(rate: Tensor, labels: list[str], low: float, high: float) -> list[int]:
    """The heads active on ``low``..``high`` of the texts (what gets explained and ablated); a
    clear error when there is none, naming the most active heads: on a neuron's top texts alone a
    head that drives it can be active on all of them, and then nothing separates its texts."""
    chosen = [i for i in range(len(labels)) if low <= float(rate[i]) <= high]
    if not chosen:
        top = sorted(range(len(labels)), key=lambda i: -float(rate[i]))[:3]
        rates = ", ".join(f"{labels[i]} {float(rate[i]):.2f}" for i in top)
        raise BadInput(f"no head is active on {low:.0%}-{high:.0%} of the texts (most active: {rates}); "
                       "name heads with --heads, or take more texts with --top so that some are inactive")
    return chosen
