"""Context look-ups with several features (the paper-2 toy that is trained, not planted; issue 24).

Our format: 3 to 10 filler items (``recall.ITEMS``), then one more filler item as the query slot.
In half of the prompts one of eight marker words (the IOI places) stands somewhere before the last
item, and the answer is that marker's own name (``store`` -> `` Mary``, ``office`` -> `` John``,
...); in the other half there is no marker and the answer is `` no``. So each marker is its own
context feature raising its own next token: a trained model needs heads that carry the marker's
identity to the last position and MLP neurons that turn each into its name, the structure of
next-token neurons that the paper's pipeline looks for, and most MLP neurons are not such. The
distractor is another marker's name (marker prompts) or a random name (plain prompts). Every word
is in the toys' shared vocabulary, so the task changes no other toy's tokenizer.
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn
from analyses.tasks.ioi import NAMES, PLACES
from analyses.tasks.recall import ITEMS

MARKERS = tuple(PLACES)  # 8 markers
ANSWERS = tuple(NAMES[: len(MARKERS)])  # marker i raises name i
NONE = "no"
MIN_LEN, MAX_LEN = 3, 10  # filler words before the query slot
VARIANTS = ("marker", "plain")


def examples(n: int, seed: int = 0) -> list[Example]:
    def make(rng: random.Random, i: int) -> Example:
        variant = VARIANTS[i % len(VARIANTS)]
        words = [rng.choice(ITEMS) for _ in range(rng.randint(MIN_LEN, MAX_LEN))]
        if variant == "marker":
            k = rng.randrange(len(MARKERS))
            words.insert(rng.randrange(len(words)), MARKERS[k])  # never after the last filler word
            answer = ANSWERS[k]
            distractor = ANSWERS[(k + 1 + rng.randrange(len(MARKERS) - 1)) % len(MARKERS)]
        else:
            answer, distractor = NONE, rng.choice(ANSWERS)
        words.append(rng.choice(ITEMS))
        return Example(" ".join(words), " " + answer, " " + distractor, variant)

    return drawn(n, seed, make)
