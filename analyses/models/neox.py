"""GPT-NeoX / Pythia (`GPTNeoXForCausalLM`): partial rotary, fused per-head QKV, parallel residual."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from transformers.models.gpt_neox import modeling_gpt_neox

from analyses.models.base import ModelShape
from analyses.models.hooks import Hooks
from analyses.models.transformer import TransformerAdapter


class NeoXAdapter(TransformerAdapter):
    rotary = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        c = model.config
        self.shape = ModelShape(
            family="gpt_neox",
            n_layers=c.num_hidden_layers,
            d_model=c.hidden_size,
            d_vocab=c.vocab_size,
            n_ctx=c.max_position_embeddings,
            norm="layernorm",
            n_heads=c.num_attention_heads,
            n_kv_heads=c.num_attention_heads,
            d_head=c.hidden_size // c.num_attention_heads,
            d_mlp=c.intermediate_size,
            parallel_attn_mlp=bool(c.use_parallel_residual),
        )
        self._body = model.gpt_neox

    def blocks(self) -> list[nn.Module]:
        return list(self._body.layers)

    def final_norm_module(self) -> nn.Module:
        return self._body.final_layer_norm

    def _embedding(self) -> nn.Embedding:
        return self._body.embed_in

    def _parts(self, layer: int):
        block = self._body.layers[layer]
        return block.input_layernorm, block.attention, block.post_attention_layernorm, block.mlp

    def _qkv(self, attn: nn.Module, h: Tensor):
        b, s, _ = h.shape
        qkv = F.linear(h, attn.query_key_value.weight, attn.query_key_value.bias)
        # NeoX interleaves per head: [head, (q k v), d_head].
        return qkv.view(b, s, self.shape.n_heads, 3 * self.shape.d_head).chunk(3, dim=-1)

    def _qkv_weights(self, attn: nn.Module):
        heads, dh = self.shape.n_heads, self.shape.d_head
        w = attn.query_key_value.weight.view(heads, 3, dh, -1)  # out features are [head, (q k v), d_head]
        b = attn.query_key_value.bias
        b = None if b is None else b.view(heads, 3, dh)
        return [(w[:, i].permute(2, 0, 1), None if b is None else b[:, i]) for i in range(3)]

    def _attn_out_proj(self, attn: nn.Module) -> nn.Module:
        return attn.dense

    def _mlp_in_proj(self, mlp: nn.Module) -> nn.Module:
        return mlp.dense_h_to_4h

    def _mlp_out_proj(self, mlp: nn.Module) -> nn.Module:
        return mlp.dense_4h_to_h

    def _mlp(self, layer: int, mlp: nn.Module, x: Tensor, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}.mlp."
        pre = hooks(p + "hook_pre", F.linear(x, mlp.dense_h_to_4h.weight, mlp.dense_h_to_4h.bias))
        post = hooks(p + "hook_post", mlp.act(pre))
        return F.linear(post, mlp.dense_4h_to_h.weight, mlp.dense_4h_to_h.bias)


    def _rotate(self, q: Tensor, k: Tensor, cos: Tensor, sin: Tensor):
        # [b, s, h, d] layout, so the tables broadcast over the head axis (2).
        return modeling_gpt_neox.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
