"""Mamba v1 (`MambaForCausalLM`) on a pure-PyTorch path with every internal a hook point.

The fused CUDA kernels (mamba-ssm) bypass module hooks, so this path re-computes the mixer the way
HF's torch fallback does: in_proj -> (x, gate) -> causal depthwise conv -> SiLU -> x_proj ->
(dt, B, C) -> softplus(dt_proj) -> selective scan -> y + D x -> * SiLU(gate) -> out_proj.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analyses.models.base import HookedModel, ModelShape, exec_device, materialized
from analyses.models.hooks import Hooks

MIXER_HOOKS = (
    "hook_in_proj",  # x half of in_proj      [b, s, d_inner]
    "hook_gate",  # gate half of in_proj      [b, s, d_inner]
    "hook_conv",  # causal conv output, before SiLU
    "hook_ssm_in",  # SiLU(conv): the SSM's input x
    "hook_delta",  # softplus(dt_proj(dt))    [b, s, d_inner]
    "hook_B",  # [b, s, d_state]
    "hook_C",  # [b, s, d_state]
    "hook_h",  # hidden state h_t           [b, s, d_inner, d_state] (capture only)
    "hook_y",  # C h + D x, before gating   [b, s, d_inner]
    "hook_out_proj",  # out_proj output     [b, s, d_model]
)


class MambaAdapter(HookedModel):
    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        c = model.config
        self.shape = ModelShape(
            family="mamba",
            n_layers=c.num_hidden_layers,
            d_model=c.hidden_size,
            d_vocab=c.vocab_size,
            n_ctx=None,
            norm="rmsnorm",
            d_inner=c.intermediate_size,
            d_state=c.state_size,
        )
        self._body = model.backbone
        self._residual_fp32 = bool(c.residual_in_fp32)

    def hook_names(self) -> list[str]:
        names = ["hook_embed"]
        for layer in range(self.shape.n_layers):
            p = f"blocks.{layer}."
            names += [p + "hook_resid_pre", p + "hook_layer_in", p + "norm.hook_scale", p + "norm.hook_normalized"]
            names += [p + "mixer." + h for h in MIXER_HOOKS] + [p + "hook_resid_post"]
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized", "hook_logits"]

    def blocks(self) -> list[nn.Module]:
        return list(self._body.layers)

    def final_norm_module(self) -> nn.Module:
        return self._body.norm_f

    def input_device(self) -> torch.device:
        return exec_device(self._body.embeddings)

    def _embed(self, tokens: Tensor, hooks: Hooks) -> Tensor:
        emb = self._body.embeddings
        with materialized(emb):
            return hooks("hook_embed", F.embedding(tokens, emb.weight))

    def _context(self, tokens: Tensor, attention_mask: Tensor | None, hooks: Hooks) -> dict:
        return {"mask": None if attention_mask is None else attention_mask[:, :, None]}

    def _block(self, layer: int, x: Tensor, ctx: dict, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}."
        block = self._body.layers[layer]
        x = hooks(p + "hook_resid_pre", x)
        # hook_layer_in is this layer's private copy of the residual: patching it changes what
        # this mixer reads and nothing else.
        # As HF: the (possibly fp32) residual is cast to the model's dtype before the norm.
        layer_in = hooks(p + "hook_layer_in", x).to(block.norm.weight.dtype)
        h = self._norm(block.norm, layer_in, p + "norm", hooks)
        out = hooks(p + "mixer.hook_out_proj", self._mixer(block.mixer, h, ctx["mask"], p + "mixer.", hooks))
        residual = x.float() if self._residual_fp32 else x
        return hooks(p + "hook_resid_post", residual + out)

    def _mixer(self, m: nn.Module, h: Tensor, mask: Tensor | None, p: str, hooks: Hooks) -> Tensor:
        dtype = h.dtype
        seq = h.shape[1]
        if mask is not None:
            h = (h * mask).to(dtype)
        xz = F.linear(h, m.in_proj.weight, m.in_proj.bias)
        x, gate = xz.chunk(2, dim=-1)
        x, gate = hooks(p + "hook_in_proj", x), hooks(p + "hook_gate", gate)
        conv = F.conv1d(
            x.transpose(1, 2).to(m.conv1d.weight.dtype),
            m.conv1d.weight,
            m.conv1d.bias,
            padding=m.conv1d.weight.shape[-1] - 1,
            groups=x.shape[-1],
        )[..., :seq].transpose(1, 2)
        conv = hooks(p + "hook_conv", conv.to(dtype))
        u = hooks(p + "hook_ssm_in", m.act(conv))
        if mask is not None:
            u = (u * mask).to(dtype)
        dt, B, C = torch.split(F.linear(u, m.x_proj.weight), [m.time_step_rank, m.ssm_state_size, m.ssm_state_size], -1)
        delta = F.softplus((dt @ m.dt_proj.weight.T).float() + m.dt_proj.bias.float())
        delta, B, C = hooks(p + "hook_delta", delta), hooks(p + "hook_B", B), hooks(p + "hook_C", C)
        A = -torch.exp(m.A_log.float())  # [d_inner, d_state]
        dA = torch.exp(delta[..., None] * A)  # [b, s, d_inner, d_state]
        dBu = delta[..., None] * B[:, :, None, :].float() * u[..., None].float()
        state = torch.zeros(h.shape[0], *A.shape, dtype=dtype, device=h.device)
        ys, states = [], []
        want_h = hooks.wants(p + "hook_h")
        for t in range(seq):
            state = dA[:, t] * state + dBu[:, t]
            ys.append((state.to(dtype) @ C[:, t, :, None].to(dtype))[..., 0])
            if want_h:
                states.append(state)
        if want_h:
            hooks(p + "hook_h", torch.stack(states, 1))
        y = torch.stack(ys, 1) + u * m.D
        y = hooks(p + "hook_y", y)
        return F.linear((y * F.silu(gate)).to(dtype), m.out_proj.weight, m.out_proj.bias)

    def writer_bias(self, layer: int) -> Tensor | None:
        """out_proj's bias: the constant part of a layer's output (goes to DLA's bias row)."""
        proj = self._body.layers[layer].mixer.out_proj
        with materialized(proj):
            return None if proj.bias is None else proj.bias.detach().clone()
