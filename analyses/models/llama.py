"""Llama-style models (Llama, Mistral, Qwen2): RMSNorm, rotary, gated MLP, grouped-query attention."""

from __future__ import annotations

import torch.nn.functional as F
from torch import Tensor, nn
from transformers.models.llama import modeling_llama

from analyses.models.base import ModelShape
from analyses.models.hooks import Hooks
from analyses.models.transformer import TransformerAdapter


class LlamaAdapter(TransformerAdapter):
    rotary = True
    gated_mlp = True

    def __init__(self, model: nn.Module) -> None:
        super().__init__(model)
        c = model.config
        d_head = getattr(c, "head_dim", None) or c.hidden_size // c.num_attention_heads
        self.shape = ModelShape(
            family=c.model_type,
            n_layers=c.num_hidden_layers,
            d_model=c.hidden_size,
            d_vocab=c.vocab_size,
            n_ctx=c.max_position_embeddings,
            norm="rmsnorm",
            n_heads=c.num_attention_heads,
            n_kv_heads=c.num_key_value_heads or c.num_attention_heads,
            d_head=d_head,
            d_mlp=c.intermediate_size,
        )
        self._body = model.model

    def blocks(self) -> list[nn.Module]:
        return list(self._body.layers)

    def final_norm_module(self) -> nn.Module:
        return self._body.norm

    def _embedding(self) -> nn.Embedding:
        return self._body.embed_tokens

    def _parts(self, layer: int):
        block = self._body.layers[layer]
        return block.input_layernorm, block.self_attn, block.post_attention_layernorm, block.mlp

    def _sliding_window(self, layer: int) -> int | None:
        c = self.model.config
        window = getattr(c, "sliding_window", None)
        if window is None:
            return None
        types = getattr(c, "layer_types", None)
        if c.model_type == "mistral" or types is None:
            return window
        return window if types[layer] == "sliding_attention" else None

    def _qkv(self, attn: nn.Module, h: Tensor):
        b, s, _ = h.shape
        d = self.shape.d_head
        q = F.linear(h, attn.q_proj.weight, attn.q_proj.bias).view(b, s, -1, d)
        k = F.linear(h, attn.k_proj.weight, attn.k_proj.bias).view(b, s, -1, d)
        v = F.linear(h, attn.v_proj.weight, attn.v_proj.bias).view(b, s, -1, d)
        return q, k, v

    def _qkv_weights(self, attn: nn.Module):
        dh = self.shape.d_head
        out = []
        for proj in (attn.q_proj, attn.k_proj, attn.v_proj):
            w = proj.weight.view(-1, dh, proj.weight.shape[1]).permute(2, 0, 1)
            out.append((w, None if proj.bias is None else proj.bias.view(-1, dh)))
        return out

    def _attn_out_proj(self, attn: nn.Module) -> nn.Module:
        return attn.o_proj

    def _mlp_in_proj(self, mlp: nn.Module) -> nn.Module:
        return mlp.gate_proj

    def _mlp_out_proj(self, mlp: nn.Module) -> nn.Module:
        return mlp.down_proj

    def _mlp(self, layer: int, mlp: nn.Module, x: Tensor, hooks: Hooks) -> Tensor:
        p = f"blocks.{layer}.mlp."
        gate = hooks(p + "hook_pre", F.linear(x, mlp.gate_proj.weight, mlp.gate_proj.bias))
        up = hooks(p + "hook_pre_linear", F.linear(x, mlp.up_proj.weight, mlp.up_proj.bias))
        post = hooks(p + "hook_post", mlp.act_fn(gate) * up)
        return F.linear(post, mlp.down_proj.weight, mlp.down_proj.bias)


    def _rotate(self, q: Tensor, k: Tensor, cos: Tensor, sin: Tensor):
        return modeling_llama.apply_rotary_pos_emb(q, k, cos, sin, unsqueeze_dim=2)
