"""Attention patterns: what the model's own eager attention computes, causal, rows summing to 1."""

from __future__ import annotations

import re

import pytest
import torch
from conftest import TRANSFORMERS, VARIANTS, encode

from analyses.attention import attention_pattern
from analyses.errors import BadInput
from analyses.tokens import token_strings


def _prompt(lm):
    ids = encode(lm)
    return ids, token_strings(lm.tokenizer, ids[0].tolist())


@pytest.mark.parametrize("name", TRANSFORMERS)
def test_every_head_matches_the_hf_eager_pattern(name, loaded, hf_model):
    lm = loaded(name)
    ids, tokens = _prompt(lm)
    shape = lm.hooked.shape
    with torch.no_grad():
        reference = hf_model(name)(ids, output_attentions=True).attentions
    seq = ids.shape[1]
    above = torch.ones(seq, seq).triu(1).bool()
    window = VARIANTS[name][1].get("sliding_window")
    for layer in range(shape.n_layers):
        for head in range(shape.n_heads):
            grid = attention_pattern(lm.hooked, ids, layer, head, tokens)
            pattern = torch.tensor(grid.values)
            assert grid.axes == ["query", "key"] and pattern.shape == (seq, seq)
            assert torch.allclose(pattern, reference[layer][0, head].float(), atol=1e-6), (layer, head)
            assert torch.allclose(pattern.sum(-1), torch.ones(seq), atol=1e-6)
            assert (pattern[above] == 0).all()
            assert (pattern.diagonal() > 0).all()
            if window is not None:
                far = torch.arange(seq)[:, None] - torch.arange(seq)[None, :] >= window
                assert far.any() and (pattern[far] == 0).all()


def test_labels_meta_and_negative_indices(loaded):
    lm = loaded("llama-gqa")  # GQA: 4 query heads over 2 key heads, each its own pattern
    ids, tokens = _prompt(lm)
    shape = lm.hooked.shape
    assert shape.n_kv_heads < shape.n_heads
    last = attention_pattern(lm.hooked, ids, -1, -1, tokens)
    same = attention_pattern(lm.hooked, ids, shape.n_layers - 1, shape.n_heads - 1, tokens)
    assert last.values == same.values
    assert last.meta["layer"] == shape.n_layers - 1 and last.meta["head"] == shape.n_heads - 1
    assert last.meta["tokens"] == tokens
    assert last.labels["query"] == last.labels["key"] == [f"{i}:{t}" for i, t in enumerate(tokens)]
    sharing = attention_pattern(lm.hooked, ids, -1, shape.n_heads - 2, tokens)
    assert sharing.values != last.values  # query heads sharing a key head still differ


def test_mamba_and_out_of_range_requests_are_bad_input(loaded):
    mamba = loaded("mamba")
    ids, tokens = _prompt(mamba)
    with pytest.raises(BadInput, match="mamba has no attention heads"):
        attention_pattern(mamba.hooked, ids, 0, 0, tokens)
    lm = loaded("gpt2")
    ids, tokens = _prompt(lm)
    n_heads, n_layers = lm.hooked.shape.n_heads, lm.hooked.shape.n_layers
    for head in (n_heads, -n_heads - 1):
        message = f"head must be between 0 and {n_heads - 1} (negative counts from the end, down to -{n_heads}); got {head}"
        with pytest.raises(BadInput, match=re.escape(message)):
            attention_pattern(lm.hooked, ids, 0, head, tokens)
    with pytest.raises(BadInput, match=f"layer must be between 0 and {n_layers - 1}"):
        attention_pattern(lm.hooked, ids, n_layers, 0, tokens)
    with pytest.raises(BadInput, match="one non-empty prompt"):
        attention_pattern(lm.hooked, ids.repeat(2, 1), 0, 0, tokens)
    with pytest.raises(BadInput, match="token labels"):
        attention_pattern(lm.hooked, ids, 0, 0, tokens[:-1])
