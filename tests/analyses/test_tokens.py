"""Prompt encoding and answer-token resolution: clear errors, never a silent pick."""

from __future__ import annotations

import pytest

from analyses.errors import BadInput
from analyses.tokens import encode_prompt, resolve_token, token_strings


def test_encode_follows_the_tokenizer_and_bos_flags(loaded):
    gpt2, llama = loaded("gpt2").tokenizer, loaded("llama-gqa").tokenizer
    assert token_strings(gpt2, encode_prompt(gpt2, "Mary gave"))[0] == "Mary"  # no BOS by default
    assert token_strings(llama, encode_prompt(llama, "Mary gave"))[0] == "[BOS]"  # Llama-style adds BOS
    assert encode_prompt(gpt2, "Mary gave", prepend_bos=True)[0] == gpt2.bos_token_id
    assert encode_prompt(llama, "Mary gave", prepend_bos=False)[0] != llama.bos_token_id


@pytest.mark.parametrize(
    "text, message",
    [("", "empty"), ("   ", "empty"), ("Mary gave Zorro", "'Zorro'"), ("Mary " * 70, "context is 64")],
)
def test_bad_prompts(loaded, text, message):
    tok = loaded("gpt2").tokenizer
    with pytest.raises(BadInput, match=message):
        encode_prompt(tok, text, n_ctx=64)


def test_resolve_token(loaded):
    tok = loaded("gpt2").tokenizer
    assert resolve_token(tok, " Mary") == resolve_token(tok, "Mary") == tok.convert_tokens_to_ids("Mary")
    with pytest.raises(BadInput, match="2 tokens"):
        resolve_token(tok, "Mary John")
    with pytest.raises(BadInput, match="not in the model's vocabulary"):
        resolve_token(tok, "Zorro")
    with pytest.raises(BadInput, match="empty"):
        resolve_token(tok, "")


@pytest.fixture(scope="module")
def bos_is_unk():
    """A tokenizer whose BOS is also its UNK, as GPT-2's and Pythia's own are."""
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import PreTrainedTokenizerFast

    vocab = {w: i for i, w in enumerate(["<|endoftext|>", "Mary", "gave", "John", "a", "drink"])}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="<|endoftext|>"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    return PreTrainedTokenizerFast(tokenizer_object=tok, bos_token="<|endoftext|>", unk_token="<|endoftext|>")


@pytest.mark.parametrize("prepend_bos", [True, None, False])
def test_a_bos_that_is_also_unk_is_not_an_unknown_word(bos_is_unk, prepend_bos):
    ids = encode_prompt(bos_is_unk, "Mary gave John a drink", prepend_bos=prepend_bos)
    assert token_strings(bos_is_unk, ids)[-5:] == ["Mary", "gave", "John", "a", "drink"]
    assert (ids[0] == bos_is_unk.bos_token_id) == bool(prepend_bos)
    with pytest.raises(BadInput, match="not in the model's vocabulary: 'Zorro'$"):
        encode_prompt(bos_is_unk, "Mary gave Zorro a drink", prepend_bos=prepend_bos)
