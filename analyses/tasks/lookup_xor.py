"""Context look-ups that an MLP must finish: issue 24's XOR design for paper 2 (docs/neurons.md,
"A language model's many features"; a study recipe, not shipped: the finding did not emerge).

toy:lookup-lm's texts (topic-coloured filler, ``lookup_lm.FAVOURED``, with a next-token loss at every
position) with two changes. Every text holds one of the eight markers (the IOI places), so no
neuron is needed to tell "a name comes" from "none comes": in a lookup-lm design that job took all eight
of the layer's most congruent neurons, which fired on every marker. And the text ends with one of two
queries, ``?`` or ``!``: after ``?`` the answer is the marker's own name (``store`` -> `` Mary``),
after ``!`` its partner's, the marker next to it in ``MARKERS`` (``store`` -> `` John``, ``office``
-> `` Mary``). A name is then raised by (marker, query) pairs whose sum says nothing (the XOR of
marker and query), which no single head's output maps to the name linearly: MLP neurons must combine
the looked-up marker with the query. The distractor is the other query's answer. Trained, the
model learns it, but its most congruent neurons stay dense (each fires on many markers).
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn
from analyses.tasks.lookup_lm import ANSWERS, FILLERS, MARKERS, topic_filler

QUERIES = ("?", "!")  # "?": the marker's own name; "!": its partner's (the marker at index ^ 1)
WORDS = (*FILLERS, *MARKERS, *ANSWERS, *QUERIES)


def answer_of(marker: int, query: int) -> int:
    """The index (into ``ANSWERS``) of the name that follows marker ``marker`` and query ``query``."""
    return marker ^ query


def examples(n: int, seed: int = 0) -> list[Example]:
    def make(rng: random.Random, i: int) -> Example:
        words = topic_filler(rng)
        k, q = rng.randrange(len(MARKERS)), i % 2
        words.insert(rng.randrange(len(words)), MARKERS[k])
        answer, distractor = ANSWERS[answer_of(k, q)], ANSWERS[answer_of(k, 1 - q)]
        return Example(" ".join(words + [QUERIES[q]]), " " + answer, " " + distractor, "own" if q == 0 else "partner")

    return drawn(n, seed, make)
