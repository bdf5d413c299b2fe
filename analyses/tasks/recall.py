"""List recall in the style of the "Laundry List" task (Merullo et al. 2024).

Our format: ``"list : cake ring book kiss . after ring comes"`` -> ``" book"``. A list of
``L`` distinct items (L uniform in [2, 10]; ``len2`` ... ``len10`` are the variants), then a
question naming one item (never the last), whose answer is the item after it. The distractor is
another item of the list, so the logit difference measures recall rather than item frequency.
Accuracy is reported per list length; small models lose accuracy as lists grow.
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn

ITEMS = (
    "cake ring book kiss drink bone necklace snack basket computer shirt sock towel shoe hat "
    "scarf glove sheet pillow blanket"
).split()
MIN_LEN, MAX_LEN = 2, 10
WORDS = ["list", ":", ".", "after", "comes"]


def examples(n: int, seed: int = 0, min_len: int = MIN_LEN, max_len: int = MAX_LEN) -> list[Example]:
    lengths = list(range(min_len, max_len + 1))

    def make(rng: random.Random, i: int) -> Example:
        length = lengths[i % len(lengths)]
        items = rng.sample(ITEMS, length)
        k = rng.randrange(length - 1)
        answer = items[k + 1]
        distractor = rng.choice([x for x in items if x != answer])
        prompt = f"list : {' '.join(items)} . after {items[k]} comes"
        return Example(prompt, " " + answer, " " + distractor, f"len{length}")

    return drawn(n, seed, make)
