"""Prompts to token ids and answer strings to one token id, with clear errors, never a silent pick."""

from __future__ import annotations

from typing import TYPE_CHECKING

from analyses.errors import BadInput

if TYPE_CHECKING:
    import torch


def token_strings(tokenizer, ids: list[int]) -> list[str]:
    """Each token as text (``" Mary"`` for GPT-2's ``"ĠMary"``), for display and JSON."""
    return [tokenizer.decode([i], clean_up_tokenization_spaces=False) for i in ids]


def encode_prompt(tokenizer, text: str, prepend_bos: bool | None = None, n_ctx: int | None = None) -> list[int]:
    """Token ids of a prompt, by the tokenizer's own defaults unless ``prepend_bos`` overrides them."""
    if not text or not text.strip():
        raise BadInput("the prompt is empty")
    ids = list(tokenizer(text, add_special_tokens=prepend_bos is not False)["input_ids"])
    bos = tokenizer.bos_token_id
    if prepend_bos and (not ids or ids[0] != bos):
        if bos is None:
            raise BadInput("--prepend-bos: this tokenizer has no BOS token")
        ids.insert(0, bos)
    unk = tokenizer.unk_token_id
    if unk is not None and unk in _text_ids(tokenizer, text, ids, prepend_bos) and tokenizer.unk_token not in text:
        words = [w for w in text.split() if unk in tokenizer(w, add_special_tokens=False)["input_ids"]]
        raise BadInput(f"not in the model's vocabulary: {', '.join(map(repr, words)) or repr(text)}")
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
    return list(tokenizer(text, add_special_tokens=False)["input_ids"])


def resolve_token(tokenizer, text: str) -> int:
    """The single token id spelled by ``text`` (e.g. ``" Mary"`` for GPT-2 BPE).

    Multi-token spellings, words outside the vocabulary, and spellings that name two different
    tokens (encoded text vs a literal vocabulary entry) are errors naming the tokens.
    """
    if not text:
        raise BadInput("an answer token is empty")
    ids = list(tokenizer(text, add_special_tokens=False)["input_ids"])
    vocab = tokenizer.get_vocab()
    literal = vocab.get(text)
    unk = tokenizer.unk_token_id
    encoded = ids[0] if len(ids) == 1 and (ids[0] != unk or text == tokenizer.unk_token) else None
    if encoded is not None and literal is not None and encoded != literal:
        raise BadInput(
            f"token {text!r} is ambiguous: it encodes to id {encoded} but is also the literal "
            f"vocabulary entry id {literal}; spell it as the tokenizer does"
        )
    if encoded is not None:
        return encoded
    if literal is not None:
        return literal
    if len(ids) > 1:
        pieces = ", ".join(repr(s) for s in token_strings(tokenizer, ids))
        raise BadInput(f"{text!r} is {len(ids)} tokens ({pieces}); an answer must be a single token")
    raise BadInput(f"{text!r} is not in the model's vocabulary")


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
