"""Indirect object identification (IOI) prompts: the two-name BABA/ABBA templates and the
three-name ABC templates used for Mamba (seed-papers.md §4.2), with their corruptions.

Every variant is sampled equally often, so a model cannot score by copying a fixed slot:
two-name prompts come as ABBA (the answer is the first name) and BABA (the second); three-name
prompts put the answer in each of the three slots, with the two repeated names in either order.
All names, places and objects are single tokens.
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, Pair, words_of, drawn

NAMES = (
    "Mary John Alice Bob Tom Anna James Sarah Paul Lisa Mark Emma David Kate Peter Laura "
    "Isaac Lucas Lauren Nora Ryan Grace Adam Julia"
).split()
PLACES = "store office park school restaurant garden station hospital".split()
OBJECTS = "drink book ring bone kiss necklace snack basket computer cake".split()

TWO_NAME = [
    "When {A} and {B} went to the {P}, {S} gave a {O} to",
    "Then, {A} and {B} had a lot of fun at the {P}. {S} gave a {O} to",
    "After {A} and {B} went to the {P}, {S} gave a {O} to",
    "While {A} and {B} were at the {P}, {S} gave a {O} to",
]
THREE_NAME = [
    "Then, {A}, {B} and {C} went to the {P}. {X} and {Y} gave a {O} to",
    "Afterwards {A}, {B} and {C} went to the {P}. {X} and {Y} gave a {O} to",
    "When {A}, {B} and {C} arrived at the {P}, {X} and {Y} gave a {O} to",
    "Friends {A}, {B} and {C} went to the {P}. {X} and {Y} gave a {O} to",
]
TWO_NAME_VARIANTS = ("ABBA", "BABA")
# Answer slot (1-3) x order of the two repeated names in the second clause.
THREE_NAME_VARIANTS = tuple(f"slot{s}-{o}" for s in (1, 2, 3) for o in ("fwd", "rev"))
WORDS = words_of(TWO_NAME + THREE_NAME)


def _two_name(rng: random.Random, variant: str) -> tuple[str, str, str, dict]:
    io, s = rng.sample(NAMES, 2)
    first, second = (io, s) if variant == "ABBA" else (s, io)
    fields = dict(A=first, B=second, S=s, P=rng.choice(PLACES), O=rng.choice(OBJECTS))
    return rng.choice(TWO_NAME), io, s, fields


def three_names(rng: random.Random, variant: str) -> tuple[list[str], str, list[str]]:
    """A three-name variant's names (``slotK-fwd|rev``): all three in order, the answer (slot K) and
    the two repeated in the second clause, in that order."""
    slot, order = int(variant[4]), variant.split("-")[1]
    names = rng.sample(NAMES, 3)
    answer = names[slot - 1]
    repeated = [n for n in names if n != answer]
    if order == "rev":
        repeated.reverse()
    return names, answer, repeated


def _three_name(rng: random.Random, variant: str) -> tuple[str, str, str, dict]:
    names, answer, repeated = three_names(rng, variant)
    fields = dict(A=names[0], B=names[1], C=names[2], X=repeated[0], Y=repeated[1], P=rng.choice(PLACES), O=rng.choice(OBJECTS))
    return rng.choice(THREE_NAME), answer, repeated[1], fields


def examples(n: int, seed: int = 0, kind: str = "two") -> list[Example]:
    """``n`` IOI prompts; ``kind`` is ``two`` (BABA/ABBA) or ``three`` (ABC). Variants cycle, so
    each appears n / len(variants) times (in shuffled order)."""
    variants = TWO_NAME_VARIANTS if kind == "two" else THREE_NAME_VARIANTS
    sample = _two_name if kind == "two" else _three_name

    def make(rng: random.Random, i: int) -> Example:
        variant = variants[i % len(variants)]
        template, answer, distractor, fields = sample(rng, variant)
        return Example(template.format(**fields), " " + answer, " " + distractor, variant)

    return drawn(n, seed, make)


def pairs(n: int, seed: int = 0, kind: str = "two") -> list[Pair]:
    """Clean/corrupted pairs of equal length.

    Two-name: the corrupted prompt names the indirect object as the second subject too (S2 <- IO),
    so its answer becomes the old subject. Three-name: the answer's name is replaced everywhere by
    a fresh name D (the pattern "CAB AB C -> DAB AB D"), whose answer is D.
    """
    variants = TWO_NAME_VARIANTS if kind == "two" else THREE_NAME_VARIANTS

    def make(rng: random.Random, i: int) -> Pair:
        variant = variants[i % len(variants)]
        if kind == "two":
            template, io, s, fields = _two_name(rng, variant)
            clean = template.format(**fields)
            corrupt = template.format(**{**fields, "S": io})
            return Pair(clean, corrupt, " " + io, " " + s, variant)
        template, answer, _, fields = _three_name(rng, variant)
        fresh = rng.choice([m for m in NAMES if m not in fields.values()])
        swapped = {k: (fresh if v == answer else v) for k, v in fields.items()}
        return Pair(template.format(**fields), template.format(**swapped), " " + answer, " " + fresh, variant)

    return drawn(n, seed + 1_000_003, make, "pairs")
