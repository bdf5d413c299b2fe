"""Tokens spelled for any tokenizer: SentencePiece (``▁``, byte tokens, a decoder that drops the
first space), GPT-2's byte-level BPE (``Ġ``, ``Ċ``) and the toys' word-level one. Nothing shows as
an empty string, every token has a spelling that names exactly it, and default answers written in
GPT-2's spelling become single tokens of the model's own tokenizer."""

from __future__ import annotations

import pytest

from analyses.errors import BadInput
from analyses.tokens import answer_spelling, fit_answers, resolve_token, shown, token_strings, visible_tokens
from analyses.toys import DEFAULT_PROMPT
from analyses.toys.checkpoints import NAMES, WORDS, fast_tokenizer, sentencepiece_fast_tokenizer


@pytest.fixture(scope="module")
def sp():
    return sentencepiece_fast_tokenizer(NAMES + WORDS)


@pytest.fixture(scope="module")
def byte_level():
    """A GPT-2-style byte-level BPE, trained here on a few lines (nothing downloaded)."""
    from tokenizers import ByteLevelBPETokenizer
    from transformers import PreTrainedTokenizerFast

    bpe = ByteLevelBPETokenizer()
    bpe.train_from_iterator([DEFAULT_PROMPT + " Mary\n\n  x\tz"] * 5, vocab_size=300, min_frequency=1,
                            show_progress=False, special_tokens=["<|endoftext|>"])
    return PreTrainedTokenizerFast(tokenizer_object=bpe._tokenizer, eos_token="<|endoftext|>")


def test_sentencepiece_tokens_keep_their_spaces_and_show_visibly(sp):
    ids = sp("a\nb é")["input_ids"]
    assert sp.convert_ids_to_tokens(ids) == ["<s>", "▁a", "<0x0A>", "b", "▁", "<0xC3>", "<0xA9>"]
    assert token_strings(sp, ids)[:5] == ["<s>", " a", "\n", "b", " "]  # decode alone gives "a", "" here
    assert visible_tokens(sp, ids) == ["<s>", " a", "<0x0A>", "b", "▁", "<0xC3>", "<0xA9>"]


def test_byte_level_tokens_show_visibly(byte_level):
    tok = byte_level
    ids = tok("to Mary\n\n  x\tz")["input_ids"]
    texts, visible = token_strings(tok, ids), visible_tokens(tok, ids)
    assert "".join(texts) == "to Mary\n\n  x\tz" and " Mary" in visible
    assert all(v and not v.isspace() for v in visible)
    assert "\n" not in "".join(visible) and "\\n" in "".join(visible)


def test_a_multi_token_answer_error_names_each_token_and_the_spelling_that_works(sp):
    with pytest.raises(BadInput) as e:
        resolve_token(sp, " Mary")
    assert str(e.value) == ("' Mary' is 2 tokens [▁▁][Mary]; an answer must be a single token "
                            "(this tokenizer spells ' Mary' as the single token '▁Mary')")
    assert shown(sp, sp("x ")["input_ids"]) == "[<s>][▁][x][▁]"  # x has no ▁x piece


@pytest.mark.parametrize("which", ["sp", "byte_level", "word"])
def test_every_token_has_a_spelling_that_names_exactly_it(request, which):
    tok = fast_tokenizer(NAMES + WORDS) if which == "word" else request.getfixturevalue(which)
    for i in range(len(tok)):
        spelling = answer_spelling(tok, i)
        assert spelling and resolve_token(tok, spelling) == i, (i, spelling)


def test_sentencepiece_spellings(sp):
    mary = sp.convert_tokens_to_ids("▁Mary")
    assert answer_spelling(sp, mary) == "▁Mary" and resolve_token(sp, "▁") == sp.convert_tokens_to_ids("▁")
    bare = sp.convert_tokens_to_ids("Mary")  # "Mary" as text encodes as ▁Mary: only its id names it
    assert answer_spelling(sp, bare) == f"#{bare}"
    with pytest.raises(BadInput, match="ambiguous"):
        resolve_token(sp, "Mary")


def test_default_answers_become_single_tokens_of_the_models_tokenizer(sp, byte_level):
    assert fit_answers(sp, DEFAULT_PROMPT, [" Mary", " John"]) == ["▁Mary", "▁John"]
    assert fit_answers(byte_level, DEFAULT_PROMPT, [" Mary", " John"]) == [" Mary", " John"]
    word = fast_tokenizer(NAMES + WORDS)
    assert fit_answers(word, DEFAULT_PROMPT, [" Mary", " John"]) == [" Mary", " John"]
    # A word that is no single token here: the model's likeliest next tokens, none taken twice.
    john, bob = sp.convert_tokens_to_ids("▁John"), sp.convert_tokens_to_ids("▁Bob")
    assert fit_answers(sp, DEFAULT_PROMPT, [" Zebra", " John"], predict=lambda _: [john, bob]) == ["▁Bob", "▁John"]
    assert fit_answers(sp, DEFAULT_PROMPT, [" Zebra", None]) == [" Zebra", None]  # no model: left to say why
