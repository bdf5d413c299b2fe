"""Three-name IOI where a name followed by the marker word ``left`` does not count (issue 24,
paper 4): ``ioi-marked``.

Each prompt is an ``ioi-abc`` prompt (first clause A, B, C; second clause two of them; the answer
is the one not repeated) with extra *marked* mentions, "<name> left", slipped into the name lists:
in the first clause 0-2 fresh names (were they counted, there would be two unrepeated names), in
the second clause 0-1 of A, B, C (were it counted, a third of the time no name would be left
unrepeated). Whether a name counts is only known one token after it, so a Mamba whose conv kernel
is 2 can only decide it where its conv sees the name and the next token together: at name + 1,
where the paper (Ensign & Garriga-Alonso 2024) finds its names.

The five unmarked names are the name slots ``name-arith`` edits (``SLOT_MARKERS``): a name
followed by a marker is not a slot.
"""

from __future__ import annotations

import random
import re

from analyses.tasks.base import Example, Pair, words_of, drawn
from analyses.tasks.ioi import NAMES, OBJECTS, PLACES, three_names

MARKER = "left"
TEMPLATES = [
    "Then, {L1} went to the {P}. {L2} gave a {O} to",
    "Afterwards {L1} went to the {P}. {L2} gave a {O} to",
    "When {L1} arrived at the {P}, {L2} gave a {O} to",
    "Friends {L1} went to the {P}. {L2} gave a {O} to",
]
# answer slot (1-3) x order of the two repeated names, as ioi-abc's variants
VARIANTS = tuple(f"slot{s}-{o}" for s in (1, 2, 3) for o in ("fwd", "rev"))
WORDS = [*words_of(TEMPLATES), MARKER]
SLOT_MARKERS = (MARKER,)  # after a name, these words make it no name slot (analyses.mamba.mixer.name_slots)


def _listing(rng: random.Random, kept: list[str], marked: list[str]) -> str:
    """The names in order, with each marked name ("X left") slipped in at a random place."""
    items = list(kept)
    for m in marked:
        items.insert(rng.randrange(len(items) + 1), f"{m} {MARKER}")
    return ", ".join(items[:-1]) + " and " + items[-1]


def _sample(rng: random.Random, variant: str) -> tuple[str, dict, str, str]:
    """(template, fields without the lists, answer, distractor) plus the lists in fields L1, L2."""
    names, answer, repeated = three_names(rng, variant)
    fresh = [n for n in NAMES if n not in names]
    first_marked = rng.sample(fresh, rng.choice((0, 1, 2)))
    second_marked = [rng.choice(names)] if rng.random() < 0.5 else []
    fields = dict(L1=_listing(rng, names, first_marked), L2=_listing(rng, repeated, second_marked),
                  P=rng.choice(PLACES), O=rng.choice(OBJECTS))
    return rng.choice(TEMPLATES), fields, answer, repeated[1]


def examples(n: int, seed: int = 0) -> list[Example]:
    """``n`` prompts, each variant (answer slot x order) equally often, in shuffled order."""
    def make(rng: random.Random, i: int) -> Example:
        variant = VARIANTS[i % len(VARIANTS)]
        template, fields, answer, distractor = _sample(rng, variant)
        return Example(template.format(**fields), " " + answer, " " + distractor, variant)

    return drawn(n, seed, make)


def pairs(n: int, seed: int = 0) -> list[Pair]:
    """Clean/corrupted pairs of equal length: the answer's name is replaced everywhere (marked
    mentions included) by a name the prompt does not hold, which becomes the corrupted answer."""
    def make(rng: random.Random, i: int) -> Pair:
        variant = VARIANTS[i % len(VARIANTS)]
        template, fields, answer, _ = _sample(rng, variant)
        clean = template.format(**fields)
        words = clean.replace(",", " ").replace(".", " ").split()
        fresh = rng.choice([m for m in NAMES if m not in words])
        corrupt = template.format(**{k: re.sub(rf"\b{answer}\b", fresh, v) for k, v in fields.items()})
        return Pair(clean, corrupt, " " + answer, " " + fresh, variant)

    return drawn(n, seed + 1_000_003, make, "pairs")
