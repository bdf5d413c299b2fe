"""Prompts to token ids and answer strings to one token id, with clear errors, never a silent pick;
tokens spelled so that none is invisible, whatever the tokenizer (GPT-2's ``Ġ``, SentencePiece's
``▁`` and byte tokens, word-level); and answers spelled as single tokens of the model's own
tokenizer."""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import TYPE_CHECKING

from analyses.errors import BadInput

if TYPE_CHECKING:
    import torch


SPACE_MARK = "\u2581"  # SentencePiece's ▁: a space, in the vocabulary's spelling
_BYTE_TOKEN = re.compile(r"<0x[0-9A-Fa-f]{2}>")
_BY_ID = re.compile(r"#(\d+)")
_ESCAPES = {"\n": "\\n", "\t": "\\t", "\r": "\\r"}


def token_strings(tokenizer, ids: list[int]) -> list[str]:
    """Each token as text (``" Mary"`` for GPT-2's ``"ĠMary"`` and SentencePiece's ``"▁Mary"``),
    for JSON and labels. A SentencePiece decoder drops a text's first space, which alone would
    read ``▁Mary`` as ``"Mary"`` and ``▁`` as ``""``: the spaces its ``▁`` stand for are kept."""
    out = []
    for text, piece in zip((tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in ids),
                           tokenizer.convert_ids_to_tokens(list(ids))):
        marks = len(piece) - len(piece.lstrip(SPACE_MARK)) if isinstance(piece, str) else 0
        spaces = len(text) - len(text.lstrip(" "))
        out.append(" " * (marks - spaces) + text if marks > spaces else text)
    return out


def visible_tokens(tokenizer, ids: list[int]) -> list[str]:
    """Each token as the analyst should see it, with nothing invisible: its text (``" Mary"``),
    except that a token of spaces only, a byte token, or one whose text is lost in decoding
    (``"\ufffd"``, ``""``) shows the vocabulary's own spelling (``▁``, ``Ġ``, ``<0x0A>``), and
    newlines and tabs show as ``\n`` and ``\t``."""
    out = []
    for text, piece in zip(token_strings(tokenizer, ids), tokenizer.convert_ids_to_tokens(list(ids))):
        piece = piece if isinstance(piece, str) else text
        lost = not text or "\ufffd" in text or _BYTE_TOKEN.fullmatch(piece) is not None
        if lost or (not text.strip(" ") and piece != text):
            text = piece
        text = "".join(_ESCAPES.get(c, c) for c in text)
        out.append(text.replace(" ", "\u2423") if not text.strip(" ") else text)  # spaces alone: ␣
    return out


def shown(tokenizer, ids: list[int]) -> str:
    """Tokens for a message: ``[When][ Mary][▁]``."""
    return "".join(f"[{t}]" for t in visible_tokens(tokenizer, ids))


def text_ids(tokenizer, text: str, add_special_tokens: bool = False) -> list[int]:
    """The ids ``tokenizer`` gives ``text``. A vocabulary without an unknown token (a word-level
    tokenizer without [UNK], as toy:erasure-repeat's, where every id is a symbol) cannot spell other
    words, and the tokenizers library raises a bare Exception: a BadInput naming them instead."""
    try:
        return list(tokenizer(text, add_special_tokens=add_special_tokens)["input_ids"])
    except Exception as e:  # noqa: BLE001 (tokenizers raises Exception itself)
        raise _unknown_words(tokenizer, text) from e


def _unknown_words(tokenizer, text: str) -> BadInput:
    words = [w for w in text.split() if not _spells(tokenizer, w)]
    return BadInput(f"not in the model's vocabulary: {', '.join(map(repr, words)) or repr(text)}")


def _spells(tokenizer, word: str) -> bool:
    """Whether the tokenizer spells ``word`` at all, and without its unknown token."""
    try:
        ids = tokenizer(word, add_special_tokens=False)["input_ids"]
    except Exception:  # noqa: BLE001
        return False
    return tokenizer.unk_token_id is None or tokenizer.unk_token_id not in ids


def encode_prompt(tokenizer, text: str, prepend_bos: bool | None = None, n_ctx: int | None = None) -> list[int]:
    """Token ids of a prompt, by the tokenizer's own defaults unless ``prepend_bos`` overrides them."""
    if not text or not text.strip():
        raise BadInput("the prompt is empty")
    ids = text_ids(tokenizer, text, prepend_bos is not False)
    bos = tokenizer.bos_token_id
    if prepend_bos and (not ids or ids[0] != bos):
        if bos is None:
            raise BadInput("--prepend-bos: this tokenizer has no BOS token")
        ids.insert(0, bos)
    unk = tokenizer.unk_token_id
    if unk is not None and unk in _text_ids(tokenizer, text, ids, prepend_bos) and tokenizer.unk_token not in text:
        raise _unknown_words(tokenizer, text)
    if not ids:
        raise BadInput("the prompt has no tokens")
    if n_ctx is not None and len(ids) > n_ctx:
        raise BadInput(f"the prompt is {len(ids)} tokens long; the model's context is {n_ctx}")
    return ids


def _text_ids(tokenizer, text: str, ids: list[int], prepend_bos: bool | None) -> list[int]:
    """The ids the text itself spells, without the special tokens added around it: GPT-2's and
    Pythia's BOS is also their UNK, and must not read as an unknown word."""
    if prepend_bos is False:
        return ids
    return text_ids(tokenizer, text)


def resolve_token(tokenizer, text: str, hint: bool = True) -> int:
    """The single token id spelled by ``text`` (e.g. ``" Mary"`` for GPT-2 BPE, ``"▁Mary"`` for
    SentencePiece: text never holds a ``▁``, so a spelling with one names that vocabulary entry).
    ``"#ID"`` names token ID where that text is no token itself: the one spelling of a token no
    text reaches (SentencePiece's bare ``Mary``, whose text ``"Mary"`` encodes as ``▁Mary``).

    Multi-token spellings, words outside the vocabulary, and spellings that name two different
    tokens (encoded text vs a literal vocabulary entry) are errors naming the tokens (and, with
    ``hint``, the single-token spelling of the same word where the tokenizer has one).
    """
    if not text:
        raise BadInput("an answer token is empty")
    try:
        ids = text_ids(tokenizer, text)
    except BadInput:  # no word the tokenizer spells: a literal entry or "#ID" may still name one
        ids = []
    vocab = tokenizer.get_vocab()
    literal = vocab.get(text)
    unk = tokenizer.unk_token_id
    encoded = ids[0] if len(ids) == 1 and (ids[0] != unk or text == tokenizer.unk_token) else None
    if literal is not None and SPACE_MARK in text:
        return literal
    if encoded is not None and literal is not None and encoded != literal:
        raise BadInput(
            f"token {text!r} is ambiguous: it encodes to id {encoded} but is also the literal "
            f"vocabulary entry id {literal}; spell it as the tokenizer does"
        )
    if encoded is not None:
        return encoded
    if literal is not None:
        return literal
    by_id = _BY_ID.fullmatch(text)
    if by_id is not None and int(by_id[1]) < len(tokenizer):
        return int(by_id[1])
    if len(ids) > 1:
        raise BadInput(f"{text!r} is {len(ids)} tokens {shown(tokenizer, ids)}; an answer must be a single token"
                       f"{_try_instead(tokenizer, text) if hint else ''}")
    raise BadInput(f"{text!r} is not in the model's vocabulary")


def _try_instead(tokenizer, text: str) -> str:
    """A hint naming the single token the same word is after other text, where there is one
    (``" Mary"`` is ``▁▁``, ``Mary`` alone on a SentencePiece tokenizer, but ``▁Mary`` after a word)."""
    if text == text.lstrip():
        return ""
    token = next_word_token(tokenizer, ".", text)
    if token is None:
        return ""
    return f" (this tokenizer spells {text!r} as the single token {answer_spelling(tokenizer, token)!r})"


def answer_spelling(tokenizer, token: int) -> str:
    """A spelling of one token that ``resolve_token`` reads back as that token: its text where
    that works (``" Mary"`` on GPT-2), else the vocabulary's spelling (``"▁Mary"``), else the
    text without its leading space, else its id (``"#374"``)."""
    text = token_strings(tokenizer, [token])[0]
    piece = tokenizer.convert_ids_to_tokens(token)
    for spelling in dict.fromkeys([text, piece, text.lstrip(" "), f"#{token}"]):
        try:
            if spelling and resolve_token(tokenizer, spelling, hint=False) == token:
                return spelling
        except BadInput:
            pass
    return piece


def next_word_token(tokenizer, prompt: str, word: str) -> int | None:
    """The one token ``word`` becomes right after ``prompt`` in the tokenizer's own encoding of
    the two together (``" Mary"`` after an IOI prompt: ``ĠMary``, ``▁Mary`` or ``Mary``), or
    None where it is not exactly one token there."""
    try:
        base, full = text_ids(tokenizer, prompt), text_ids(tokenizer, prompt + word)
    except BadInput:
        return None
    if len(full) == len(base) + 1 and full[: len(base)] == base and full[-1] != tokenizer.unk_token_id:
        return full[-1]
    return None


def fit_answers(tokenizer, prompt: str, answers: list[str | None],
                predict: Callable[[str], list[int]] | None = None) -> list[str | None]:
    """The answers (answer, distractor, ...) spelled as single tokens of this tokenizer, so that a
    default written for one tokenizer (``" Mary"``, GPT-2's spelling) runs on any: each is kept
    where it already names one token; else it becomes the token the word is right after
    ``prompt`` (``"▁Mary"`` on a SentencePiece tokenizer); else the model's next predictions after
    ``prompt`` in order (``predict``: token ids, likeliest first), never one already taken."""
    tokens: list[int | None] = []
    kept: list[bool] = []  # whether the answer as given already names its token
    for answer in answers:
        token, as_given = None, False
        if answer:
            try:
                token, as_given = resolve_token(tokenizer, answer), True
            except BadInput:
                token = next_word_token(tokenizer, prompt, answer if answer[:1].isspace() else " " + answer)
        tokens.append(None if token is not None and token in tokens else token)
        kept.append(as_given)
    missing = [i for i, (a, t) in enumerate(zip(answers, tokens)) if a and t is None]
    if missing and predict is not None:
        ranked = (t for t in predict(prompt) if t not in tokens)
        for i in missing:
            tokens[i] = next(ranked, None)
    return [a if t is None or as_given else answer_spelling(tokenizer, t)
            for a, t, as_given in zip(answers, tokens, kept)]


def padding_id(tokenizer) -> int:
    """The id padding is written with (always masked out): the pad token's, or 0 for a tokenizer
    without one (GPT-2's, or a toy's without special tokens)."""
    return tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0


def pad_batch(seqs: list[list[int]], pad_id: int) -> tuple["torch.Tensor", "torch.Tensor"]:
    """Right-pad token lists into (ids [b, s], attention_mask [b, s])."""
    import torch

    width = max(len(s) for s in seqs)
    ids = torch.full((len(seqs), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(seqs), width), dtype=torch.long)
    for i, s in enumerate(seqs):
        ids[i, : len(s)] = torch.tensor(s)
        mask[i, : len(s)] = 1
    return ids, mask
