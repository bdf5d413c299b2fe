"""The attention-transformer forward pass shared by GPT-2, GPT-NeoX and Llama-style models.

A family adapter supplies only what differs: where its modules live, how q/k/v are split out of
its projections, its MLP, and whether it uses rotary embeddings or a parallel residual.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from analyses.models.base import HookedModel, exec_device, materialized
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

    def _block(self, layer: int, x: Tensor, ctx: dict, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}."
        ln1, attn, ln2, mlp = self._parts(layer)
        x = hooks(p + "hook_resid_pre", x)
        attn_out = hooks(p + "hook_attn_out", self._attention(layer, attn, ln1, x, ctx, hooks))
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
        qh, kh, vh = q.transpose(1, 2), k.transpose(1, 2), v.transpose(1, 2)
        if n_kv != n_heads:
            kh = kh.repeat_interleave(n_heads // n_kv, dim=1)
            vh = vh.repeat_interleave(n_heads // n_kv, dim=1)
        mask = ctx["masks"][layer].to(x.device)
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
        if hooks.active(p + "ln1.hook_scale") or hooks.active(p + "ln1.hook_normalized"):
            self._norm(ln1, x, p + "ln1", hooks)  # so that ln1's own hooks still see [b, s, d]
        out = []
        for name, (w, bias) in zip(SPLIT_INPUTS, self._qkv_weights(attn)):
            xi = hooks(p + name, x[:, :, None, :].expand(-1, -1, w.shape[1], -1))
            y = torch.einsum("bshd,dhe->bshe", self._norm(ln1, xi, "", Hooks()), w)
            out.append(y if bias is None else y + bias)
        return tuple(out)

    def _embed(self, tokens: Tensor, hooks: Hooks) -> Tensor:
        wte = self._embedding()
        with materialized(wte):
            x = hooks("hook_embed", F.embedding(tokens, wte.weight))
        if self.shape.has_pos_embed:
            wpe = self._pos_embedding()
            pos = torch.arange(tokens.shape[1], device=tokens.device)[None]
            with materialized(wpe):
                pe = F.embedding(pos.to(exec_device(wpe)), wpe.weight).to(x.device)
            x = x + hooks("hook_pos_embed", pe.expand_as(x))
        return x

    def input_device(self) -> torch.device:
        return exec_device(self._embedding())

    def _linear(self, module: nn.Module, x: Tensor) -> Tensor:
        if self.conv1d:
            out = x.reshape(-1, x.shape[-1]) @ module.weight
            out = out if module.bias is None else out + module.bias
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

    def value_weights(self, layer: int) -> tuple[Tensor, Tensor | None]:
        """(W_V [d_model, kv_heads, d_head], b_V [kv_heads, d_head] or None) of one layer: the
        OV circuit a writer's output goes through when a later head reads it (erasure)."""
        attn = self._parts(layer)[1]
        with materialized(attn):
            w, b = self._qkv_weights(attn)[2]
            return w.detach().clone(), None if b is None else b.detach().clone()

    def attn_norm_params(self, layer: int) -> tuple[Tensor, Tensor | None]:
        """(effective weight, bias) of the norm before one layer's attention, offset applied."""
        norm = self._parts(layer)[0]
        with materialized(norm):
            w = norm.weight.detach().clone() + self.shape.norm_offset
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
