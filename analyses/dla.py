"""Direct logit attribution and the logit lens (SPEC.md, numerics contract).

DLA of a component x_c toward a direction d (an answer's unembedding, or answer - distractor):
``((x_c - mean x_c) / s_final) . (w_lnf * d)`` (no centering for RMSNorm), with ``s_final`` the
final norm's scale from the same forward pass. Everything is projected onto that direction before
any per-head or per-neuron expansion, so neuron DLA never builds a [.., d_mlp, d_model] tensor.
The constant rest (b_O, MLP and out_proj biases, b_lnf . d, b_U) is the ``bias`` row, and the
rows sum to the logit (difference).
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.results import Table

BY = ("layer", "head", "neuron")


def _position(pos: int, n: int) -> int:
    if not -n <= pos < n:
        raise BadInput(f"position {pos} is outside the prompt's {n} tokens")
    return pos % n


def readout(model: HookedModel, directions: Tensor) -> Tensor:
    """``directions`` [d_model, k] (unembedding columns) as the vectors a component is dotted
    with, before dividing by the final norm's scale, to give its DLA: the final-norm weight
    applied, centred for LayerNorm (centring the vector = centring the component)."""
    w = model.final_norm_params()[0].float().to(directions.device)
    v = w[:, None] * directions.float()
    return v - v.mean(0, keepdim=True) if model.shape.norm == "layernorm" else v


def _direction(model: HookedModel, answer: int, distractor: int | None) -> tuple[Tensor, Tensor, float]:
    """(d, v, constant): the unembedding direction, the vector a component is dotted with before
    dividing by the scale (final-norm weight applied, centred for LayerNorm), and the constant
    part of the logit (b_lnf . d + b_U)."""
    ids = [answer] if distractor is None else [answer, distractor]
    cols, b_u = model.unembed_columns(ids)
    sign = torch.tensor([1.0, -1.0][: len(ids)], device=cols.device)
    d = (cols.float() * sign).sum(-1)
    v = readout(model, d[:, None])[:, 0]
    b = model.final_norm_params()[1]
    const = 0.0 if b is None else float(b.float().to(d.device) @ d)
    if b_u is not None:
        const += float((b_u.float() * sign.to(b_u.device)).sum())
    return d, v, const


def dla(
    model: HookedModel,
    tokens: list[int],
    answer: int,
    distractor: int | None = None,
    by: str = "layer",
    pos: int = -1,
) -> Table:
    """Complete DLA decomposition of the answer logit (or logit difference) at ``pos``."""
    if by not in BY:
        raise BadInput(f"--by must be one of {', '.join(BY)}")
    shape = model.shape
    is_mamba = shape.family == "mamba"
    if is_mamba and by != "layer":
        raise BadInput("Mamba has no heads or MLP neurons; use --by layer")
    p = _position(pos, len(tokens))
    n = shape.n_layers
    capture = ["hook_embed", "ln_final.hook_scale"]
    if shape.has_pos_embed:
        capture.append("hook_pos_embed")
    for layer in range(n):
        b = f"blocks.{layer}."
        if is_mamba:
            capture.append(b + "mixer.hook_out_proj")
            continue
        capture.append(b + ("hook_attn_out" if by == "layer" else "attn.hook_z"))
        capture.append(b + ("mlp.hook_post" if by == "neuron" else "hook_mlp_out"))
    result = model.run(torch.tensor([tokens]), capture=capture)
    cache = result.cache
    d, v, const = _direction(model, answer, distractor)
    scale = cache["ln_final.hook_scale"][0, p, 0].float().to(v.device)

    def attr(x: Tensor) -> float:
        """DLA of one d_model vector."""
        return float(x.float().to(v.device) @ v / scale)

    labels, values = ["embed"], [attr(cache["hook_embed"][0, p])]
    if shape.has_pos_embed:
        labels.append("pos_embed")
        values.append(attr(cache["hook_pos_embed"][0, p]))
    bias = const
    for layer in range(n):
        b = f"blocks.{layer}."
        if is_mamba:
            out_bias = model.writer_bias(layer)
            bias_part = 0.0 if out_bias is None else attr(out_bias)
            labels.append(f"L{layer}")
            values.append(attr(cache[b + "mixer.hook_out_proj"][0, p]) - bias_part)
            bias += bias_part
            continue
        w_o, b_o, w_out, b_out = model.writer_weights(layer)
        b_o_part = 0.0 if b_o is None else attr(b_o)
        b_out_part = 0.0 if b_out is None else attr(b_out)
        bias += b_o_part + b_out_part
        if by == "layer":
            labels.append(f"L{layer}ATTN")
            values.append(attr(cache[b + "hook_attn_out"][0, p]) - b_o_part)
        else:
            z = cache[b + "attn.hook_z"][0, p].float().to(v.device)  # [heads, d_head]
            per_head = (z * (w_o.float().to(v.device) @ v)).sum(-1) / scale
            labels += [f"L{layer}H{h}" for h in range(shape.n_heads)]
            values += per_head.tolist()
        if by == "neuron":
            post = cache[b + "mlp.hook_post"][0, p].float().to(v.device)
            per_neuron = post * (w_out.float().to(v.device) @ v) / scale
            labels += [f"L{layer}N{i}" for i in range(shape.d_mlp)]
            values += per_neuron.tolist()
        else:
            labels.append(f"L{layer}MLP")
            values.append(attr(cache[b + "hook_mlp_out"][0, p]) - b_out_part)
    labels.append("bias")
    values.append(bias)
    logits = result.logits[0, p].float()
    logit = logits[answer] - (logits[distractor] if distractor is not None else 0.0)
    meta = {"by": by, "pos": p, "logit": float(logit), "sum": float(sum(values))}
    return Table("dla", labels, {"value": values}, meta)


def logit_lens(
    model: HookedModel,
    tokens: list[int],
    answer: int,
    distractor: int | None = None,
    pos: int = -1,
    decode: Callable[[int], str] = str,
) -> Table:
    """The residual stream after each layer, through the final norm (recomputed on that stream)
    and the unembedding: the answer's logit (or difference), its rank, and the top token."""
    p = _position(pos, len(tokens))
    n = model.shape.n_layers
    names = [f"blocks.{layer}.hook_resid_pre" for layer in range(n)]
    result = model.run(torch.tensor([tokens]), capture=names)
    stream = [result.cache[name][0, p] for name in names] + [result.resid[0, p]]
    device = stream[-1].device
    logits = model.unembed(torch.stack([s.to(device) for s in stream])[None])[0].float()
    value = logits[:, answer] - (logits[:, distractor] if distractor is not None else 0.0)
    rank = (logits > logits[:, answer : answer + 1]).sum(-1)
    labels = ["embed"] + [f"L{layer}" for layer in range(n)]
    columns = {
        "value": value.tolist(),
        "answer_rank": rank.tolist(),
        "top_token": [decode(int(i)) for i in logits.argmax(-1)],
    }
    return Table("logit_lens", labels, columns, {"pos": p, "logit": float(value[-1])})
