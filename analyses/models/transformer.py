"""The attention-transformer forward pass shared by GPT-2, GPT-NeoX and Llama-style models.

A family adapter supplies only what differs: where its modules live, how q/k/v are split out of
its projections, its MLP, and whether it uses rotary embeddings or a parallel residual.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator, Sequence

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analyses.models.base import HookedModel, Prefix, exec_device, materialized
from analyses.models.hooks import Hooks

PER_LAYER_ATTN = ("hook_q", "hook_k", "hook_v", "hook_attn_scores", "hook_pattern", "hook_z")
# Per-head copies of the residual stream read by each head's q, k and v projections [b, s, heads, d]:
# computed only when a run asks for them (edge attribution and path patching do).
SPLIT_INPUTS = ("hook_q_input", "hook_k_input", "hook_v_input")


class TransformerAdapter(HookedModel):
    """Subclasses set ``shape`` and ``_body`` (the HF base model) and implement the methods under
    "what each family supplies"."""

    rotary: bool = False
    conv1d: bool = False  # GPT-2 stores projection weights as [in, out]
    gated_mlp: bool = False  # Llama-style: act(gate) * up

    # ---- hook names ----------------------------------------------------------------------

    def hook_names(self) -> list[str]:
        names = ["hook_embed"] + (["hook_pos_embed"] if self.shape.has_pos_embed else [])
        for layer in range(self.shape.n_layers):
            p = f"blocks.{layer}."
            attn = [p + "attn." + h for h in PER_LAYER_ATTN]
            if self.rotary:
                attn[3:3] = [p + "attn.hook_rot_q", p + "attn.hook_rot_k"]
            ln1 = [p + "ln1.hook_scale", p + "ln1.hook_normalized"]
            ln2 = [p + "ln2.hook_scale", p + "ln2.hook_normalized"]
            mlp = [p + "mlp.hook_pre"] + ([p + "mlp.hook_pre_linear"] if self.gated_mlp else [])
            mlp += [p + "mlp.hook_post", p + "hook_mlp_out"]
            names += [p + "hook_resid_pre"] + [p + h for h in SPLIT_INPUTS] + ln1 + attn + [p + "hook_attn_out"]
            names += ([] if self.shape.parallel_attn_mlp else [p + "hook_resid_mid"]) + [p + "hook_mlp_in"] + ln2 + mlp
            names.append(p + "hook_resid_post")
        return names + ["ln_final.hook_scale", "ln_final.hook_normalized", "hook_logits"]

    # ---- the forward pass ----------------------------------------------------------------

    def _context(self, tokens: Tensor, attention_mask: Tensor | None, hooks: Hooks) -> dict:
        b, s = tokens.shape
        pos = torch.arange(s, device=tokens.device)
        causal = pos[None, :] <= pos[:, None]  # [q, k]
        masks = []
        for layer in range(self.shape.n_layers):
            window = self._sliding_window(layer)
            m = causal if window is None else causal & (pos[:, None] - pos[None, :] < window)
            m = m[None, None]
            if attention_mask is not None:
                m = m & attention_mask.bool()[:, None, None, :]
            masks.append(m)
        ctx: dict = {"masks": masks, "position_ids": pos[None].expand(b, s)}
        if self.rotary:
            ctx["rotary"] = self._rotary_tables(tokens, ctx["position_ids"])
        return ctx

    def prefix_hooks(self, layer: int) -> tuple[str, str]:
        """The hook names of a layer's keys and values as attention consumes them (what a
        ``Prefix`` holds): keys after rotary embedding where the family has it."""
        p = f"blocks.{layer}.attn."
        return p + ("hook_rot_k" if self.rotary else "hook_k"), p + "hook_v"

    def _with_prefix(self, ctx: dict, prefix: Prefix) -> dict:
        start = prefix.start
        ctx = dict(ctx, prefix=prefix, masks=[m[:, :, start:] for m in ctx["masks"]],
                   position_ids=ctx["position_ids"][:, start:])
        if self.rotary:
            ctx["rotary"] = tuple(t[:, start:] for t in ctx["rotary"])
        return ctx

    def _can_narrow(self, layer: int, hooks: Hooks | None) -> bool:
        if hooks is None:
            return True
        if not hasattr(self, "_layer_names"):
            self._layer_names = [[n for n in self.hook_names() if n.startswith(f"blocks.{i}.")] for i in range(self.shape.n_layers)]
        return not any(hooks.active(name) for name in self._layer_names[layer])

    def _block(self, layer: int, x: Tensor, ctx: dict, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}."
        ln1, attn, ln2, mlp = self._parts(layer)
        x = hooks(p + "hook_resid_pre", x)
        attn_out = hooks(p + "hook_attn_out", self._attention(layer, attn, ln1, x, ctx, hooks))
        narrow = ctx.get("narrow")
        if narrow is not None:  # the block at one position per row: the attention said so too
            x = x[torch.arange(x.shape[0], device=x.device), narrow][:, None]
        if self.shape.parallel_attn_mlp:
            mlp_in = hooks(p + "hook_mlp_in", x)
            mlp_out = hooks(p + "hook_mlp_out", self._mlp(layer, mlp, self._norm(ln2, mlp_in, p + "ln2", hooks), hooks))
            x = mlp_out + attn_out + x
        else:
            x = hooks(p + "hook_resid_mid", attn_out + x)
            mlp_in = hooks(p + "hook_mlp_in", x)  # the MLP's private copy of the residual
            mlp_out = self._mlp(layer, mlp, self._norm(ln2, mlp_in, p + "ln2", hooks), hooks)
            x = x + hooks(p + "hook_mlp_out", mlp_out)
        return hooks(p + "hook_resid_post", x)

    def _attention(self, layer: int, attn: nn.Module, ln1: nn.Module, x: Tensor, ctx: dict, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}.attn."
        b, s, _ = x.shape
        n_heads, n_kv = self.shape.n_heads, self.shape.n_kv_heads
        if any(hooks.active(f"blocks.{layer}.{name}") for name in SPLIT_INPUTS):
            q, k, v = self._split_qkv(layer, attn, ln1, x, hooks)
        else:
            q, k, v = self._qkv(attn, self._norm(ln1, x, f"blocks.{layer}.ln1", hooks))  # [b, s, heads, d_head]
        q, k, v = hooks(p + "hook_q", q), hooks(p + "hook_k", k), hooks(p + "hook_v", v)
        if self.rotary:
            cos, sin = (t.to(x.device) for t in ctx["rotary"])
            q, k = self._rotate(q, k, cos, sin)
            q, k = hooks(p + "hook_rot_q", q), hooks(p + "hook_rot_k", k)
        prefix = ctx.get("prefix")
        if prefix is not None and prefix.start:
            # Earlier positions' keys and values, shared by every copy of the prompts in the batch.
            pk, pv = prefix.keys[layer], prefix.values[layer]
            rep = b // pk.shape[0]
            k = torch.cat([pk.to(k.device, k.dtype).repeat(rep, 1, 1, 1), k], 1)
            v = torch.cat([pv.to(v.device, v.dtype).repeat(rep, 1, 1, 1), v], 1)
        if "state_out" in ctx:  # the next run's prefix: keys and values of every position so far
            ctx["state_out"][layer] = (k, v)
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if n_kv != n_heads:
            kh = kh.repeat_interleave(n_heads // n_kv, dim=1)
            vh = vh.repeat_interleave(n_heads // n_kv, dim=1)
        mask = ctx["masks"][layer].to(x.device)
        narrow = ctx.get("narrow")
        if narrow is not None:  # queries at one position per row; keys and values everywhere
            rows = torch.arange(b, device=x.device)
            qh = qh[rows, :, narrow][:, :, None]
            mask = mask.expand(b, -1, -1, -1)[rows, :, narrow][:, :, None]
            s = 1
        scale = attn.scaling
        if hooks.active(p + "hook_attn_scores") or hooks.active(p + "hook_pattern"):
            scores = (qh @ kh.transpose(-1, -2)) * scale
            scores = scores.masked_fill(~mask, torch.finfo(scores.dtype).min)
            scores = hooks(p + "hook_attn_scores", scores)
            pattern = hooks(p + "hook_pattern", scores.float().softmax(-1).to(q.dtype))
            z = pattern @ vh
        else:
            z = F.scaled_dot_product_attention(qh, kh, vh, attn_mask=mask, scale=scale)
        z = hooks(p + "hook_z", z.transpose(1, 2))
        return self._linear(self._attn_out_proj(attn), z.reshape(b, s, n_heads * self.shape.d_head))

    def _split_qkv(self, layer: int, attn: nn.Module, ln1: nn.Module, x: Tensor, hooks: Hooks):
        """q, k, v with each head reading its own copy of the residual (``hook_{q,k,v}_input``), so
        an edit or a gradient can reach one head's query, key or value input alone."""
        p = f"blocks.{layer}."
        if not any(hooks.wants(p + n) or p + n in hooks.edits for n in SPLIT_INPUTS):
            return self._tapped_qkv(layer, attn, ln1, x, hooks)
        if hooks.active(p + "ln1.hook_scale") or hooks.active(p + "ln1.hook_normalized"):
            self._norm(ln1, x, p + "ln1", hooks)  # so that ln1's own hooks still see [b, s, d]
        out = []
        for name, (w, bias) in zip(SPLIT_INPUTS, self._qkv_weights(attn)):
            xi = hooks(p + name, x[:, :, None, :].expand(-1, -1, w.shape[1], -1))
            y = torch.einsum("bshd,dhe->bshe", self._norm(ln1, xi, "", Hooks()), w)
            out.append(y if bias is None else y + bias)
        return tuple(out)

    def _tapped_qkv(self, layer: int, attn: nn.Module, ln1: nn.Module, x: Tensor, hooks: Hooks):
        """The per-head inputs when they are only differentiated (EAP): q, k, v come from one
        normalisation of ``x`` as in a plain run, and each head's input gradient is formed in the
        backward pass from its output gradient, ``J_norm^T (w * (W_h g_h))`` (the per-head copies
        equal ``x``, so this is their exact gradient), instead of normalising one copy per head."""
        p = f"blocks.{layer}."
        stats = self._norm_stats(ln1, x)
        scale = stats[1].detach()
        unit = (stats[0] / scale).detach()
        w_norm = (ln1.weight + self.shape.norm_offset).float().detach()
        q, k, v = self._qkv(attn, self._norm(ln1, x, p + "ln1", hooks, stats))
        out = []
        for name, y, (w, _) in zip(SPLIT_INPUTS, (q, k, v), self._qkv_weights(attn)):
            tap = hooks(p + name, x.new_zeros(x.shape[0], x.shape[1], w.shape[1], x.shape[2]))
            out.append(_HeadInputGrad.apply(y, tap, unit, scale, w_norm, w.detach(), self.shape.norm == "layernorm"))
        return tuple(out)
    def _embed(self, tokens: Tensor, hooks: Hooks, offset: int = 0) -> Tensor:
        wte = self._embedding()
        with materialized(wte):
            x = hooks("hook_embed", F.embedding(tokens, wte.weight))
        if self.shape.has_pos_embed:
            wpe = self._pos_embedding()
            pos = torch.arange(offset, offset + tokens.shape[1], device=tokens.device)[None]
            with materialized(wpe):
                pe = F.embedding(pos.to(exec_device(wpe)), wpe.weight).to(x.device)
            x = x + hooks("hook_pos_embed", pe.expand_as(x))
        return x

    def input_device(self) -> torch.device:
        return exec_device(self._embedding())

    def _linear(self, module: nn.Module, x: Tensor) -> Tensor:
        if self.conv1d:
            flat = x.reshape(-1, x.shape[-1])
            out = flat @ module.weight if module.bias is None else torch.addmm(module.bias, flat, module.weight)
            return out.view(*x.shape[:-1], -1)
        return F.linear(x, module.weight, module.bias)

    def writer_weights(self, layer: int) -> tuple[Tensor, Tensor | None, Tensor, Tensor | None]:
        """(W_O [n_heads, d_head, d_model], b_O, W_out [d_mlp, d_model], b_out) of one layer."""
        o, down = self._attn_out_proj(self._parts(layer)[1]), self._mlp_out_proj(self._parts(layer)[3])
        with materialized(o, down):
            w_o = o.weight if self.conv1d else o.weight.T
            w_out = down.weight if self.conv1d else down.weight.T
            w_o = w_o.detach().reshape(self.shape.n_heads, self.shape.d_head, -1).clone()
            bias = [None if m.bias is None else m.bias.detach().clone() for m in (o, down)]
            return w_o, bias[0], w_out.detach().clone(), bias[1]

    @contextlib.contextmanager
    def head_out_weight(self, layer: int, head: int) -> Iterator[tuple[nn.Parameter, Tensor]]:
        """(the attention out-projection's weight, a writable view of head ``head``'s W_O
        [d_head, d_model] in it), materialised for the block: what a reversible weight edit
        (``analyses.edits``) saves, writes and restores, without naming the family's modules."""
        o = self._attn_out_proj(self._parts(layer)[1])
        rows = slice(head * self.shape.d_head, (head + 1) * self.shape.d_head)
        with materialized(o):
            w = o.weight
            yield w, (w[rows, :] if self.conv1d else w[:, rows].T)

    def attn_weights_stamp(self, layer: int) -> tuple:
        """Identifies the state of a layer's attention and its norm: any in-place change of their
        parameters (a weight edit, its undo) bumps a version, so a cache keyed by it stays true."""
        ln1, attn, _, _ = self._parts(layer)
        return tuple((id(p), p._version) for p in (*ln1.parameters(), *attn.parameters()))

    def qkv_weights(self, layer: int) -> list[tuple[Tensor, Tensor | None]]:
        """[(W [d_model, heads, d_head], b [heads, d_head] or None)] for q, k and v of one layer
        (k and v per key/value head): what composition scores and spectra are made of."""
        attn = self._parts(layer)[1]
        with materialized(attn):
            return [(w.detach().clone(), None if b is None else b.detach().clone()) for w, b in self._qkv_weights(attn)]

    def value_weights(self, layer: int) -> tuple[Tensor, Tensor | None]:
        """(W_V [d_model, kv_heads, d_head], b_V [kv_heads, d_head] or None) of one layer: the
        OV circuit a writer's output goes through when a later head reads it (erasure)."""
        attn = self._parts(layer)[1]
        with materialized(attn):
            w, b = self._qkv_weights(attn)[2]
            return w.detach().clone(), None if b is None else b.detach().clone()

    def mlp_in_columns(self, layer: int, neurons: Sequence[int]) -> Tensor:
        """``W_in[:, neurons]`` [d_model, k]: the input weights of those neurons' pre-activations
        (the gate's on gated MLPs), without copying the whole projection."""
        proj = self._mlp_in_proj(self._parts(layer)[3])
        with materialized(proj):
            idx = list(neurons)
            w = proj.weight.detach()
            return (w[:, idx] if self.conv1d else w[idx].T).clone()

    def attn_norm_params(self, layer: int) -> tuple[Tensor, Tensor | None]:
        """(effective weight in fp32, bias) of the norm before one layer's attention, offset applied."""
        return self._block_norm_params(self._parts(layer)[0])

    def mlp_norm_params(self, layer: int) -> tuple[Tensor, Tensor | None]:
        """(effective weight in fp32, bias) of the norm before one layer's MLP, offset applied."""
        return self._block_norm_params(self._parts(layer)[2])

    def _block_norm_params(self, norm: nn.Module) -> tuple[Tensor, Tensor | None]:
        with materialized(norm):
            w = norm.weight.detach().float() + self.shape.norm_offset
            b = getattr(norm, "bias", None)
            return w, None if b is None else b.detach().clone()

    # ---- what each family supplies -------------------------------------------------------

    def _parts(self, layer: int) -> tuple[nn.Module, nn.Module, nn.Module, nn.Module]:
        """(ln1, attention, ln2, mlp) modules of a layer."""
        raise NotImplementedError

    def _qkv(self, attn: nn.Module, h: Tensor) -> tuple[Tensor, Tensor, Tensor]:
        raise NotImplementedError

    def _attn_out_proj(self, attn: nn.Module) -> nn.Module:
        raise NotImplementedError

    def _qkv_weights(self, attn: nn.Module) -> list[tuple[Tensor, Tensor | None]]:
        """[(W, b)] for q, k, v with W as [d_model, heads, d_head] and b as [heads, d_head]."""
        raise NotImplementedError

    def _mlp_in_proj(self, mlp: nn.Module) -> nn.Module:
        """The projection whose outputs are the neurons' pre-activations (the gate on gated MLPs)."""
        raise NotImplementedError

    def _mlp_out_proj(self, mlp: nn.Module) -> nn.Module:
        raise NotImplementedError

    def _mlp(self, layer: int, mlp: nn.Module, x: Tensor, hooks: Hooks) -> Tensor:
        raise NotImplementedError

    def _embedding(self) -> nn.Embedding:
        raise NotImplementedError

    def _pos_embedding(self) -> nn.Embedding:
        raise NotImplementedError

    def _sliding_window(self, layer: int) -> int | None:
        return None

    def _rotary_tables(self, tokens: Tensor, position_ids: Tensor) -> tuple[Tensor, Tensor]:
        """(cos, sin) from the model's own rotary module (scaling variants included)."""
        probe = self._embedding().weight
        dtype = probe.dtype if probe.device.type != "meta" else self.model.dtype
        return self._body.rotary_emb(probe.new_empty(0, dtype=dtype, device=tokens.device), position_ids)

    def _rotate(self, q: Tensor, k: Tensor, cos: Tensor, sin: Tensor) -> tuple[Tensor, Tensor]:
        raise NotImplementedError


class _HeadInputGrad(torch.autograd.Function):
    """Identity on a head's q/k/v ``y`` [b, s, h, e]; the gradient of the (zero) per-head input tap
    [b, s, h, d] is ``J^T (w * (g @ W_h^T))`` with J the norm's Jacobian at the shared input
    (symmetric: ``(v - mean v - unit * mean(unit * v)) / scale``, without ``mean v`` for RMSNorm)."""

    @staticmethod
    def forward(ctx, y, tap, unit, scale, w_norm, w, layernorm):
        ctx.save_for_backward(unit, scale, w_norm, w)
        ctx.layernorm = layernorm
        return y.clone()

    @staticmethod
    def backward(ctx, g):
        unit, scale, w_norm, w = ctx.saved_tensors
        v = torch.einsum("bshe,dhe->bshd", g.float(), w.float()) * w_norm
        if ctx.layernorm:
            v = v - v.mean(-1, keepdim=True)
        v = v - unit[:, :, None] * (unit[:, :, None] * v).mean(-1, keepdim=True)
        return g, (v / scale[:, :, None]).to(g.dtype), None, None, None, None, None
