"""GPT-2 (`GPT2LMHeadModel`): learned positions, LayerNorm, Conv1D projections."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn

from analyses.models.base import ModelShape
from analyses.models.hooks import Hooks
from analyses.models.transformer import TransformerAdapter


def _act(act: nn.Module, x: Tensor) -> Tensor:
    """GPT-2's tanh-approximated GELU as one fused kernel (HF writes it out in five ops: a sixth of
    a sweep's time on CPU); equal to HF's to float rounding."""
    if type(act).__name__ in ("NewGELUActivation", "GELUTanh", "PytorchGELUTanh", "GELUPytorchTanh"):
        return F.gelu(x, approximate="tanh")
    return act(x)


class GPT2Adapter(TransformerAdapter):
    conv1d = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        c = model.config
        d_mlp = c.n_inner if c.n_inner is not None else 4 * c.hidden_size
        self.shape = ModelShape(
            family="gpt2",
            n_layers=c.num_hidden_layers,
            d_model=c.hidden_size,
            d_vocab=c.vocab_size,
            n_ctx=c.n_positions,
            norm="layernorm",
            n_heads=c.num_attention_heads,
            n_kv_heads=c.num_attention_heads,
            d_head=c.hidden_size // c.num_attention_heads,
            d_mlp=d_mlp,
            has_pos_embed=True,
        )
        self._body = model.transformer

    def blocks(self) -> list[nn.Module]:
        return list(self._body.h)

    def final_norm_module(self) -> nn.Module:
        return self._body.ln_f

    def _embedding(self) -> nn.Embedding:
        return self._body.wte

    def _pos_embedding(self) -> nn.Embedding:
        return self._body.wpe

    def _parts(self, layer: int):
        block = self._body.h[layer]
        return block.ln_1, block.attn, block.ln_2, block.mlp

    def _qkv(self, attn: nn.Module, h: Tensor):
        b, s, _ = h.shape
        q, k, v = self._linear(attn.c_attn, h).split(self.shape.d_model, dim=2)
        shape = (b, s, self.shape.n_heads, self.shape.d_head)
        return q.view(shape), k.view(shape), v.view(shape)

    def _qkv_weights(self, attn: nn.Module):
        d, heads, dh = self.shape.d_model, self.shape.n_heads, self.shape.d_head
        w, b = attn.c_attn.weight, attn.c_attn.bias  # [d, 3d], [3d]
        return [(w[:, i * d : (i + 1) * d].reshape(d, heads, dh), b[i * d : (i + 1) * d].reshape(heads, dh)) for i in range(3)]

    def _attn_out_proj(self, attn: nn.Module) -> nn.Module:
        return attn.c_proj

    def _mlp_in_proj(self, mlp: nn.Module) -> nn.Module:
        return mlp.c_fc

    def _mlp_out_proj(self, mlp: nn.Module) -> nn.Module:
        return mlp.c_proj

    def _mlp(self, layer: int, mlp: nn.Module, x: Tensor, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}.mlp."
        pre = hooks(p + "hook_pre", self._linear(mlp.c_fc, x))
        post = hooks(p + "hook_post", _act(mlp.act, pre))
        return self._linear(mlp.c_proj, post)
