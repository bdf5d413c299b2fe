"""Mamba v1 (`MambaForCausalLM`) on a pure-PyTorch path with every internal a hook point.

The fused CUDA kernels (mamba-ssm) bypass module hooks, so this path re-computes the mixer the way
HF's torch fallback does: in_proj -> (x, gate) -> causal depthwise conv -> SiLU -> x_proj ->
(dt, B, C) -> softplus(dt_proj) -> selective scan -> y + D x -> * SiLU(gate) -> out_proj.

The scan runs step by step only when ``hook_h`` is looked at; otherwise all states are computed
at once (in place on CPU, a chunked log-depth scan under autograd or on an accelerator). The conv
is split into its kernel slices (``hook_conv_slice.{k}``, k = -(width-1)..0) only when one of
them is looked at.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analyses.errors import BadInput
from analyses.models.base import HookedModel, ModelShape, Prefix, exec_device, materialized
from analyses.models.hooks import Hooks

MIXER_HOOKS = (
    "hook_in_proj",  # x half of in_proj      [b, s, d_inner]
    "hook_gate",  # gate half of in_proj      [b, s, d_inner]
    "hook_conv",  # causal conv output, before SiLU (= sum of hook_conv_slice.{k} + bias)
    "hook_ssm_in",  # SiLU(conv): the SSM's input x
    "hook_delta",  # softplus(dt_proj(dt))    [b, s, d_inner]
    "hook_B",  # [b, s, d_state]
    "hook_C",  # [b, s, d_state]
    "hook_h",  # hidden state h_t  [b, s, d_inner, d_state] (capture only; selects the sequential scan)
    "hook_y",  # C h + D x, before gating   [b, s, d_inner]
    "hook_out_proj",  # out_proj output     [b, s, d_model]
)


CONV_SLICES = "hook_conv_slices"  # every kernel slice of the conv, stacked: [b, s, width, d_inner]


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
            d_conv=int(c.conv_kernel),
        )
        self._body = model.backbone
        self._residual_fp32 = bool(c.residual_in_fp32)
        self._width = int(c.conv_kernel)

    def hook_names(self) -> list[str]:
        names = ["hook_embed"]
        for layer in range(self.shape.n_layers):
            p = f"blocks.{layer}."
            names += [p + "hook_resid_pre", p + "hook_layer_in", p + "norm.hook_scale", p + "norm.hook_normalized"]
            mixer = [p + "mixer." + h for h in MIXER_HOOKS]
            at = mixer.index(p + "mixer.hook_conv")  # the slices come before the conv they sum to
            slices = [f"{p}mixer.hook_conv_slice.{k}" for k in range(-(self._width - 1), 1)]
            mixer[at:at] = [f"{p}mixer.{CONV_SLICES}", *slices]
            names += mixer + [p + "hook_resid_post"]
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized", "hook_logits"]

    def blocks(self) -> list[nn.Module]:
        return list(self._body.layers)

    def final_norm_module(self) -> nn.Module:
        return self._body.norm_f

    def input_device(self) -> torch.device:
        return exec_device(self._body.embeddings)

    def _embed(self, tokens: Tensor, hooks: Hooks, offset: int = 0) -> Tensor:
        emb = self._body.embeddings
        with materialized(emb):
            return hooks("hook_embed", F.embedding(tokens, emb.weight))

    def _context(self, tokens: Tensor, attention_mask: Tensor | None, hooks: Hooks) -> dict:
        return {"mask": None if attention_mask is None else attention_mask[:, :, None]}

    def _with_prefix(self, ctx: dict, prefix: Prefix) -> dict:
        if prefix.start and len(prefix.states) < self.shape.n_layers:  # keys and values mean nothing here
            raise BadInput("a run over a suffix from keys and values is not supported for mamba: it continues "
                           "only from the conv and SSM state of a run with keep_prefix")
        return dict(ctx, states=prefix.states)

    def _kept_prefix(self, seq: int, state: dict) -> Prefix:
        return Prefix(seq, {}, {}, states=dict(state))

    def _block(self, layer: int, x: Tensor, ctx: dict, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}."
        block = self._body.layers[layer]
        x = hooks(p + "hook_resid_pre", x)
        # hook_layer_in is this layer's private copy of the residual: patching it changes what
        # this mixer reads and nothing else.
        # As HF: the (possibly fp32) residual is cast to the model's dtype before the norm.
        layer_in = hooks(p + "hook_layer_in", x).to(block.norm.weight.dtype)
        h = self._norm(block.norm, layer_in, p + "norm", hooks)
        out = hooks(p + "mixer.hook_out_proj", self._mixer(block.mixer, h, ctx, layer, p + "mixer.", hooks))
        residual = x.float() if self._residual_fp32 else x
        return hooks(p + "hook_resid_post", residual + out)

    def _mixer(self, m: nn.Module, h: Tensor, ctx: dict, layer: int, p: str, hooks: Hooks) -> Tensor:
        """The mixer; continuing a Prefix's state (``ctx["states"]``) and, asked to
        (``ctx["state_out"]``), leaving the state after the last position for the next run."""
        mask = ctx["mask"]
        tail, h0 = ctx.get("states", {}).get(layer, (None, None))
        keep = ctx.get("state_out")
        dtype = h.dtype
        seq = h.shape[1]
        if mask is not None:
            h = (h * mask).to(dtype)
        xz = F.linear(h, m.in_proj.weight, m.in_proj.bias)
        x, gate = xz.chunk(2, dim=-1)
        x, gate = hooks(p + "hook_in_proj", x), hooks(p + "hook_gate", gate)
        seen = x if tail is None else torch.cat([tail.to(x.dtype), x], 1)  # earlier inputs first
        width = m.conv1d.weight.shape[-1]
        slices = [f"{p}hook_conv_slice.{k}" for k in range(-(width - 1), 1)]
        if any(hooks.active(n) for n in [p + CONV_SLICES, *slices]):
            conv = self._conv_by_slices(m, x, p + CONV_SLICES, slices, hooks, tail)
        else:
            conv = F.conv1d(
                seen.transpose(1, 2).to(m.conv1d.weight.dtype),
                m.conv1d.weight,
                m.conv1d.bias,
                padding=width - 1,
                groups=x.shape[-1],
            )[..., seen.shape[1] - seq : seen.shape[1]].transpose(1, 2)
        conv = hooks(p + "hook_conv", conv.to(dtype))
        u = hooks(p + "hook_ssm_in", m.act(conv))
        if mask is not None:
            u = (u * mask).to(dtype)
        dt, B, C = torch.split(F.linear(u, m.x_proj.weight), [m.time_step_rank, m.ssm_state_size, m.ssm_state_size], -1)
        delta = F.softplus((dt @ m.dt_proj.weight.T).float() + m.dt_proj.bias.float())
        delta, B, C = hooks(p + "hook_delta", delta), hooks(p + "hook_B", B), hooks(p + "hook_C", C)
        A = -torch.exp(m.A_log.float())  # [d_inner, d_state]
        if hooks.active(p + "hook_h") or keep is not None or h0 is not None:
            dA = torch.exp(delta[..., None] * A)  # [b, s, d_inner, d_state]
            dBu = delta[..., None] * B[:, :, None, :].float() * u[..., None].float()
            y, last = self._scan_sequential(dA, dBu, C, dtype, p, hooks, h0)
            if keep is not None:  # the conv's last width-1 inputs (zeros before the first) and h
                keep[layer] = (F.pad(seen, (0, 0, max(width - 1 - seen.shape[1], 0), 0))[:, -(width - 1):], last)
        else:
            y = selective_scan(delta, A, B, u, C, dtype)
        y = y + u * m.D
        y = hooks(p + "hook_y", y)
        return F.linear((y * F.silu(gate)).to(dtype), m.out_proj.weight, m.out_proj.bias)

    @staticmethod
    def _conv_by_slices(m: nn.Module, x: Tensor, stacked: str, names: list[str], hooks: Hooks,
                        tail: Tensor | None = None) -> Tensor:
        """The causal conv as the sum of its kernel slices, each a hook point:
        ``slice_k[p] = w_k * x[p + k]`` (zero where p + k < 0) for k = -(width-1)..0, and
        ``conv = sum_k slice_k + bias``. ``stacked`` sees them all as one [b, s, width, d_inner]
        activation (a sweep patches every slice of a layer through one hook). ``tail``: the inputs
        of the positions before ``x``'s (a run continuing a Prefix)."""
        w = m.conv1d.weight[:, 0]  # [d_inner, width]; tap width-1 multiplies the current position
        width, seq = w.shape[-1], x.shape[1]
        xf = (x if tail is None else torch.cat([tail.to(x.dtype), x], 1)).to(w.dtype)
        n = xf.shape[1]
        parts = [((F.pad(xf, (0, 0, -k, 0))[:, :n] if k else xf) * w[:, width - 1 + k])[:, n - seq:]
                 for k in range(-(width - 1), 1)]  # shifted[p] = x[p + k], over x's positions only
        if hooks.active(stacked):
            parts = hooks(stacked, torch.stack(parts, 2)).unbind(2)
        total = None
        for name, part in zip(names, parts):
            part = hooks(name, part)
            total = part if total is None else total + part
        return total + m.conv1d.bias if m.conv1d.bias is not None else total

    @staticmethod
    def _scan_sequential(dA: Tensor, dBu: Tensor, C: Tensor, dtype: torch.dtype, p: str, hooks: Hooks,
                         h0: Tensor | None = None) -> tuple[Tensor, Tensor]:
        """The recurrence step by step from ``h0`` (zero when None), the reference path: used when
        ``hook_h`` is looked at, and by generation (which keeps the last state). Returns (y, h_last)."""
        state = (torch.zeros(dA.shape[0], *dA.shape[2:], dtype=dtype, device=dA.device) if h0 is None
                 else h0.to(dA.device))
        ys, states = [], []
        want_h = hooks.wants(p + "hook_h")
        for t in range(dA.shape[1]):
            state = dA[:, t] * state + dBu[:, t]
            ys.append((state.to(dtype) @ C[:, t, :, None].to(dtype))[..., 0])
            if want_h:
                states.append(state)
        if want_h:
            hooks(p + "hook_h", torch.stack(states, 1))
        return torch.stack(ys, 1), state

    def writer_bias(self, layer: int) -> Tensor | None:
        """out_proj's bias: the constant part of a layer's output (goes to DLA's bias row)."""
        proj = self._body.layers[layer].mixer.out_proj
        with materialized(proj):
            return None if proj.bias is None else proj.bias.detach().clone()


def selective_scan(delta: Tensor, A: Tensor, B: Tensor, u: Tensor, C: Tensor, dtype: torch.dtype) -> Tensor:
    """``y_t = C_t . h_t`` with ``h_t = exp(delta_t A) * h_{t-1} + delta_t B_t u_t`` for every t:
    delta, u [b, s, E]; A [E, N]; B, C [b, s, N]. The same arithmetic as the step-by-step
    reference (``_scan_sequential``), without its per-step hook calls and matmuls.

    On CPU the states are accumulated step by step in a position-major layout (each step one
    fused multiply-add on contiguous memory, in place when no gradient is needed): measured
    fastest there, since a CPU gains nothing from doing more work in fewer calls. Elsewhere
    (CUDA, where one kernel launch per position dominates) a chunked log-depth scan."""
    if delta.device.type != "cpu":
        dA = torch.exp(delta[..., None] * A)
        dBu = delta[..., None] * B[:, :, None, :].float() * u[..., None].float()
        h = chunked_scan(dA, dBu)  # [b, s, E, N]
        b, s, e, n = h.shape
        return (h.to(dtype).reshape(b * s, e, n) @ C.to(dtype).reshape(b * s, n, 1)).view(b, s, e)
    d = delta.transpose(0, 1).contiguous()[..., None]  # [s, b, E, 1]
    dA = torch.exp(d * A)
    h = d * B.float().transpose(0, 1).contiguous()[:, :, None, :] * u.float().transpose(0, 1).contiguous()[..., None]
    if torch.is_grad_enabled():
        states = [h[0]]
        for t in range(1, h.shape[0]):
            states.append(torch.addcmul(h[t], dA[t], states[-1]))
        h = torch.stack(states)
    else:
        for t in range(1, h.shape[0]):
            h[t].addcmul_(dA[t], h[t - 1])
    s, b, e, n = h.shape
    y = h.to(dtype).reshape(s * b, e, n) @ C.to(dtype).transpose(0, 1).reshape(s * b, n, 1)
    return y.view(s, b, e).transpose(0, 1)


def parallel_scan(a: Tensor, b: Tensor, h0: Tensor | None = None) -> Tensor:
    """``h_t = a_t * h_{t-1} + b_t`` for every t along axis 1 (h_{-1} = ``h0`` or 0), in
    ceil(log2(seq)) steps of whole-tensor operations (Hillis-Steele). Stable: it only multiplies
    decays a <= 1, never divides by them."""
    if h0 is not None:
        b = torch.cat([b[:, :1] + a[:, :1] * h0[:, None], b[:, 1:]], 1)
    d, seq = 1, a.shape[1]
    while d < seq:
        b = torch.cat([b[:, :d], torch.addcmul(b[:, d:], a[:, d:], b[:, :-d])], 1)
        if 2 * d < seq:
            a = torch.cat([a[:, :d], a[:, d:] * a[:, :-d]], 1)
        d *= 2
    return b


def chunked_scan(a: Tensor, b: Tensor, chunk: int = 64) -> Tensor:
    """``parallel_scan`` over chunks of ``chunk`` positions, each chunk starting from the last
    state of the one before: log-depth within a chunk, memory bounded by the chunk."""
    seq = a.shape[1]
    if seq <= chunk:
        return parallel_scan(a, b)
    parts, h0 = [], None
    for start in range(0, seq, chunk):
        part = parallel_scan(a[:, start : start + chunk], b[:, start : start + chunk], h0)
        parts.append(part)
        h0 = part[:, -1]
    return torch.cat(parts, 1)
