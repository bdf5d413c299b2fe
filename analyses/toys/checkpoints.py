"""Small, deterministic HF checkpoints with a word-level tokenizer, or a SentencePiece-style one.

They are real checkpoints (config.json + safetensors + tokenizer files) written to a directory and
loaded through the same loader as any user checkpoint: the built-in random toys use them, and so
do the tests for every family.
"""

from __future__ import annotations

from pathlib import Path

import string

import torch
from tokenizers import Tokenizer, decoders, models, normalizers, pre_tokenizers, processors

SPECIALS = ["[UNK]", "[PAD]", "[BOS]", "[EOS]"]

# Words of the IOI templates (seed-papers.md §4.2) and of a few other short prompts, so that the
# default prompt tokenizes to whole words.
NAMES = (
    "Mary John Alice Bob Tom Anna James Sarah Paul Lisa Mark Emma David Kate Peter Laura "
    "Isaac Lucas Lauren Nora Ryan Grace Adam Julia"
).split()
WORDS = (
    "When Then Afterwards Friends While After and the a an went to store office park school "
    "restaurant garden station hospital arrived at gave drink book ring bone kiss necklace "
    "snack basket computer apple had lot of fun , . : ; The cat sat on mat dog ran in is was "
    "of 0 1 2 = ? yes no list items question answer which item first second last"
).split()


def word_tokenizer(words: list[str], bos: bool = False, specials: bool = True) -> Tokenizer:
    """A word-level tokenizer over SPECIALS + words; ``bos`` prepends [BOS] like Llama's does.
    Without ``specials`` every id is a word (an unknown word is an error): a toy whose task uses
    the whole vocabulary, as the erasure toy's does (unused ids slow its training, docs/erasure-toy.md)."""
    vocab = {w: i for i, w in enumerate(dict.fromkeys((SPECIALS if specials else []) + words))}
    tok = Tokenizer(models.WordLevel(vocab=vocab, unk_token="[UNK]"))
    tok.pre_tokenizer = pre_tokenizers.Whitespace()
    if bos:
        tok.post_processor = processors.TemplateProcessing(
            single="[BOS] $A", pair="[BOS] $A $B", special_tokens=[("[BOS]", vocab["[BOS]"])]
        )
    return tok


SP_SPECIALS = ["<unk>", "<pad>", "<s>", "</s>"]  # the ids _config gives: pad 1, bos 2, eos 3


def sentencepiece_tokenizer(words: list[str]) -> Tokenizer:
    """A tokenizer built the way Llama 2's SentencePiece one is: every word is one ``▁word`` piece
    after the ``▁`` that a space becomes (and that starts the text), single characters and the
    bare names as fallbacks, ``▁`` and ``▁▁`` as pieces, bytes ``<0x00>``..``<0xFF>`` for anything
    else; decoding drops the first leading space, and ``<s>`` starts every prompt. So ``" Mary"``
    is two tokens (``▁▁``, ``Mary``) while ``"Mary"`` is ``▁Mary``, as on a real Llama."""
    pieces = ["▁", "▁▁", *(f"▁{w}" for w in words), *(w for w in words if w.istitle()),
              *string.ascii_letters, *string.digits, *string.punctuation]
    vocab = [(s, 0.0) for s in SP_SPECIALS] + [(f"<0x{b:02X}>", 0.0) for b in range(256)]
    vocab += [(p, -1.0 if len(p) > 1 else -5.0) for p in dict.fromkeys(pieces)]  # whole pieces win
    tok = Tokenizer(models.Unigram(vocab, unk_id=0, byte_fallback=True))
    tok.normalizer = normalizers.Sequence([normalizers.Prepend("▁"), normalizers.Replace(" ", "▁")])
    tok.decoder = decoders.Sequence([decoders.Replace("▁", " "), decoders.ByteFallback(), decoders.Fuse(),
                                     decoders.Strip(" ", 1, 0)])
    tok.post_processor = processors.TemplateProcessing(single="<s> $A", pair="<s> $A $B",
                                                       special_tokens=[("<s>", SP_SPECIALS.index("<s>"))])
    return tok


def _config(family: str, vocab: int, **kw):
    from transformers import GPT2Config, GPTNeoXConfig, LlamaConfig, MambaConfig, MistralConfig, Qwen2Config

    ids = dict(bos_token_id=2, eos_token_id=3, pad_token_id=1)
    if not kw.pop("specials", True):  # every id a word: no token is BOS, EOS or padding
        ids = dict(bos_token_id=None, eos_token_id=None, pad_token_id=None)
    d, layers, heads, ctx = kw.pop("d_model", 32), kw.pop("n_layers", 2), kw.pop("n_heads", 4), kw.pop("n_ctx", 64)
    if family == "gpt2":
        base = dict(n_embd=d, n_layer=layers, n_head=heads, n_positions=ctx, activation_function="gelu_new")
        return GPT2Config(vocab_size=vocab, **base, **ids, **kw)
    if family == "gpt_neox":
        rope = {"rope_type": "default", "rope_theta": 10000.0, "partial_rotary_factor": kw.pop("rotary_pct", 0.25)}
        base = dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads, intermediate_size=4 * d)
        return GPTNeoXConfig(vocab_size=vocab, max_position_embeddings=ctx, rope_parameters=rope, **base, **ids, **kw)
    if family in ("llama", "mistral", "qwen2"):
        cls = {"llama": LlamaConfig, "mistral": MistralConfig, "qwen2": Qwen2Config}[family]
        base = dict(hidden_size=d, num_hidden_layers=layers, num_attention_heads=heads,
                    intermediate_size=kw.pop("intermediate_size", 3 * d))
        kw.setdefault("num_key_value_heads", max(1, heads // 2))
        return cls(vocab_size=vocab, max_position_embeddings=ctx, **base, **ids, **kw)
    if family == "mamba":
        return MambaConfig(vocab_size=vocab, hidden_size=d, num_hidden_layers=layers,
                           state_size=kw.pop("state_size", 8), **ids, **kw)
    raise ValueError(f"no toy config for family {family!r}")


def build_checkpoint(
    out_dir: str | Path,
    family: str,
    *,
    words: list[str] | None = None,
    seed: int = 0,
    bos: bool | None = None,
    jitter: float = 0.0,
    tokenizer: str = "word",
    specials: bool = True,
    **shape,
) -> Path:
    """Write a randomly initialised checkpoint of ``family`` to ``out_dir`` and return the path.

    ``shape`` overrides sizes (d_model, n_layers, n_heads, n_ctx) or passes config fields.
    ``tokenizer="sentencepiece"`` gives it ``sentencepiece_tokenizer`` instead of the word-level one;
    ``specials=False`` a word-level one without special tokens (every id a word).
    ``jitter`` adds N(0, jitter^2) noise to every parameter, so biases and norm weights are not
    the zeros and ones of a fresh init (tests need them non-trivial). The same arguments always
    give the same weights.
    """
    from transformers import AutoModelForCausalLM

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    words = words if words is not None else NAMES + WORDS
    bos = family in ("llama", "mistral", "qwen2") if bos is None else bos
    fast = fast_tokenizer(words, bos, specials) if tokenizer == "word" else sentencepiece_fast_tokenizer(words)
    config = _config(family, fast.backend_tokenizer.get_vocab_size(), specials=specials, **shape)
    torch.manual_seed(seed)
    model = AutoModelForCausalLM.from_config(config)
    if jitter:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(torch.randn_like(p) * jitter)
    model.save_pretrained(out)
    fast.save_pretrained(out)
    return out


def fast_tokenizer(words: list[str], bos: bool = False, specials: bool = True):
    """The HF tokenizer object around ``word_tokenizer`` (what a checkpoint saves and loads)."""
    from transformers import PreTrainedTokenizerFast

    if not specials:
        return PreTrainedTokenizerFast(tokenizer_object=word_tokenizer(words, specials=False))
    return PreTrainedTokenizerFast(
        tokenizer_object=word_tokenizer(words, bos=bos),
        unk_token="[UNK]",
        pad_token="[PAD]",
        bos_token="[BOS]",
        eos_token="[EOS]",
    )


def sentencepiece_fast_tokenizer(words: list[str]):
    """The HF tokenizer object around ``sentencepiece_tokenizer``."""
    from transformers import PreTrainedTokenizerFast

    return PreTrainedTokenizerFast(tokenizer_object=sentencepiece_tokenizer(words), unk_token="<unk>",
                                   bos_token="<s>", eos_token="</s>", pad_token="<pad>")
