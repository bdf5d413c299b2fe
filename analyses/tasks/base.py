"""What every task generator returns: prompts with their answer, and equal-length prompt pairs."""

from __future__ import annotations

import random
import re
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from analyses.preparation import step

T = TypeVar("T")

# The word-level toy tokenizers split like `tokenizers`' Whitespace pre-tokenizer.
_WORD = re.compile(r"\w+|[^\w\s]+")


def words_of(texts: list[str]) -> list[str]:
    """The distinct words of some templates (``{X}`` placeholders dropped), in first-seen order."""
    return list(dict.fromkeys(w for t in texts for w in _WORD.findall(re.sub(r"\{\w\}", " ", t))))


@dataclass(frozen=True)
class Example:
    """A prompt whose next token should be ``answer`` rather than ``distractor``.

    ``variant`` names the template variant (e.g. ``ABBA``, ``slot2``, ``len7``) so accuracy can be
    reported per variant; ``target`` is an optional token that should follow the answer (Count01's
    end-of-sequence rule).
    """

    prompt: str
    answer: str
    distractor: str
    variant: str
    target: str | None = None


@dataclass(frozen=True)
class Pair:
    """A clean / corrupted prompt pair of equal token length. ``answer`` is the clean run's answer
    and ``distractor`` the corrupted run's (the normalized-logit-difference convention)."""

    clean: str
    corrupt: str
    answer: str
    distractor: str
    variant: str = ""
    line: int | None = field(default=None, compare=False)  # its line in a pairs file, for error messages


def drawn(n: int, seed: int, make: Callable[[random.Random, int], T], what: str = "prompts") -> list[T]:
    """``make(rng, i)`` for i = 0..n-1 from one generator seeded with ``seed``, in shuffled order,
    reporting progress as "sampling {what}": a generator whose variants cycle with i has each
    n / len(variants) times."""
    rng = random.Random(seed)
    out = []
    for i in range(n):
        step(i, n, f"sampling {what}")
        out.append(make(rng, i))
    rng.shuffle(out)
    return out

