"""Context look-up (the paper-2 toy, Neo et al. 2024): does the context hold a marker word?

Our format: 3 to 10 filler items (``recall.ITEMS``), then one more filler item as the query slot.
In the ``marker`` variant the marker word ``school`` stands somewhere before the last word and
the answer is ``yes``; in the ``plain`` variant it does not and the answer is ``no`` (half each).
Only a head that looks back over the context can see the marker, so the model needs a head that
detects it and an MLP neuron that turns "marker seen" into ``yes``: the structure the paper's
head -> next-token-neuron analysis looks for. Every word is already in the toys' shared
vocabulary (``tasks.vocabulary``), so the task changes no other toy's tokenizer.
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn
from analyses.tasks.recall import ITEMS

MARKER = "school"
MIN_LEN, MAX_LEN = 3, 10  # filler words before the query slot
VARIANTS = ("marker", "plain")


def examples(n: int, seed: int = 0) -> list[Example]:
    def make(rng: random.Random, i: int) -> Example:
        variant = VARIANTS[i % len(VARIANTS)]
        words = [rng.choice(ITEMS) for _ in range(rng.randint(MIN_LEN, MAX_LEN))]
        if variant == "marker":
            words.insert(rng.randrange(len(words)), MARKER)  # never after the last filler word
        words.append(rng.choice(ITEMS))
        yes = variant == "marker"
        return Example(" ".join(words), " yes" if yes else " no", " no" if yes else " yes", variant)

    return drawn(n, seed, make)
