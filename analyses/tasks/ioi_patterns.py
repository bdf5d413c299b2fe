"""The Mamba IOI paper's five corruption patterns (Ensign & Garriga-Alonso 2024, section 4.2;
seed-papers.md 4.2), one built-in task each: ``ioi-abc-p1`` .. ``ioi-abc-p5``.

A pattern is written ``first clause, second clause, answer`` over name letters, clean -> corrupted:

    p1  CAB AB C -> DAB AB D      p4  ABC AB C -> ABC AC B
    p2  ACB AB C -> ADB AB D      p5  ABC AC B -> ABC BC A
    p3  ABC AB C -> ABD AB D

Each letter is a distinct name drawn per prompt, on one of the four ABC templates. ``ioi-abc`` is
p1-p3 mixed (the answer in any slot, replaced everywhere by a fresh name); these fix one pattern.
As eval examples, the distractor is the corrupted answer where the clean prompt names it (p4, p5),
else the second repeated name.
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, Pair, drawn
from analyses.tasks.ioi import NAMES, OBJECTS, PLACES, THREE_NAME

# name -> (clean first clause, second clause, answer), (corrupted ...)
PATTERNS: dict[str, tuple[tuple[str, str, str], tuple[str, str, str]]] = {
    "ioi-abc-p1": (("CAB", "AB", "C"), ("DAB", "AB", "D")),
    "ioi-abc-p2": (("ACB", "AB", "C"), ("ADB", "AB", "D")),
    "ioi-abc-p3": (("ABC", "AB", "C"), ("ABD", "AB", "D")),
    "ioi-abc-p4": (("ABC", "AB", "C"), ("ABC", "AC", "B")),
    "ioi-abc-p5": (("ABC", "AC", "B"), ("ABC", "BC", "A")),
}


def _prompt(template: str, letters: dict[str, str], first: str, second: str, place: str, obj: str) -> str:
    a, b, c = (letters[x] for x in first)
    x, y = (letters[z] for z in second)
    return template.format(A=a, B=b, C=c, X=x, Y=y, P=place, O=obj)


def pairs(pattern: str, n: int, seed: int = 0) -> list[Pair]:
    """``n`` clean/corrupted pairs of ``pattern`` (a key of PATTERNS); the variant is the template index."""
    clean, corrupt = PATTERNS[pattern]

    def make(rng: random.Random, i: int) -> Pair:
        letters = dict(zip("ABCD", rng.sample(NAMES, 4)))
        t = i % len(THREE_NAME)
        place, obj = rng.choice(PLACES), rng.choice(OBJECTS)
        return Pair(_prompt(THREE_NAME[t], letters, clean[0], clean[1], place, obj),
                    _prompt(THREE_NAME[t], letters, corrupt[0], corrupt[1], place, obj),
                    " " + letters[clean[2]], " " + letters[corrupt[2]], f"template{t}")

    return drawn(n, seed + 2_000_029, make, "pairs")


def examples(pattern: str, n: int, seed: int = 0) -> list[Example]:
    """The clean prompts of ``pairs``, with a distractor named in the prompt (see the module doc)."""
    clean, corrupt = PATTERNS[pattern]
    out = []
    for p in pairs(pattern, n, seed):
        second = p.clean.rsplit(" gave", 1)[0].split()  # ... X and Y
        distractor = p.distractor if corrupt[2] in clean[0] else " " + second[-1]
        out.append(Example(p.clean, p.answer, distractor, p.variant))
    return out
