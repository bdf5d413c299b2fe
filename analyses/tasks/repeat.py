"""Repeated segments: the task the trained erasure toy (paper 1, docs/erasure-toy.md) learns.

Each text is ``LENGTH`` tokens over ``WORDS`` (32 symbols ``t0`` .. ``t31``, the toy's whole
vocabulary: it has no special tokens, because four ids that never occur kept it on the loss
plateau, docs/erasure-toy.md): a segment of ``MIN_SEG`` to ``MAX_SEG`` distinct symbols, the
same segment again, then uniformly random symbols up to ``LENGTH``. A model is trained on the next token at every position (the second copy is
predictable, the rest is not); the example's answer is the text's last token, so a task prompt
plus its answer is the whole text (``analyses.corpus`` measures every position of it). The
variant ``seg{k}`` names the segment length, so the second copy's positions are known.
"""

from __future__ import annotations

import random

from analyses.preparation import step
from analyses.tasks.base import Example

WORDS = [f"t{i}" for i in range(32)]  # the whole vocabulary (the toy's tokenizer has no specials)
LENGTH = 22
MIN_SEG, MAX_SEG = 4, 10


def examples(n: int, seed: int = 0) -> list[Example]:
    rng = random.Random(seed)
    out = []
    for i in range(n):
        step(i, n, "sampling prompts")
        k = rng.randint(MIN_SEG, MAX_SEG)
        seg = rng.sample(WORDS, k)
        tokens = seg + seg + [rng.choice(WORDS) for _ in range(LENGTH - 2 * k)]
        last = tokens[-1]
        other = WORDS[(WORDS.index(last) + 1 + rng.randrange(len(WORDS) - 1)) % len(WORDS)]
        out.append(Example(" ".join(tokens[:-1]), " " + last, " " + other, f"seg{k}"))
    return out


def second_copy(example: Example) -> range:
    """The positions whose next token is a predictable copy: at position ``p`` the model
    predicts token ``p + 1``; tokens ``k + 1 .. 2k - 1`` repeat the segment once its first
    token has come again (the second copy's first token, at ``k``, cannot be known)."""
    k = int(example.variant.removeprefix("seg"))
    return range(k, 2 * k - 1)
