"""The Laundry List task in a compact form for a toy trained on it (issue 24, paper 3).

``"got cake hat . need hat ring cake . still"`` -> ``" ring"``: the items already got come first,
then the list; the answer is the list item not got, the distractor a got item. Test prompts
(``laundry-toy``) have N = 2..10 items (variants ``len2`` .. ``len10``) and one missing.

Training prompts (``laundry-toy-train``) are short lists only (N = 2..4) after a random run of
filler words, so that every position a long test prompt uses is trained while no list is long: a
long list then fails for the number of its items (the paper's crowding), not for untrained position
embeddings. They also name only some of the items as got (m uniform in 0..N-1 half the time, N-1
otherwise) with a random not-got item as the answer: a graded curriculum whose first step (m = 0,
"say any list item") is what a plain mover head does. Putting the got items first lets a list item
see that it was got (bench/laundry_short_attempt.py, docs/composition.md).
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn
from analyses.tasks.laundry import one_missing

ITEMS = (
    "apple bread butter cheese milk egg rice pasta flour sugar salt pepper honey jam tea coffee juice soap "
    "towel sponge brush comb razor lotion candle lamp bulb battery tape glue string needle button zipper "
    "sock shirt scarf glove hat coat boot shoe belt wallet key lock pen pencil paper stamp card box bag "
    "basket bottle cup plate spoon fork knife"
).split()
FILLER = "la"
WORDS = ["got", "need", "still", ".", FILLER]
MIN_LEN, MAX_LEN = 2, 10
TRAIN_MAX_LEN = 4
# enough filler that a short training prompt reaches every position of the longest test prompt
# (a prompt of N items, N-1 got, has 2N + 4 words)
MAX_FILL = (2 * MAX_LEN + 4) - (2 * TRAIN_MAX_LEN + 4)


def prompt(items: list[str], got: list[str]) -> str:
    return " ".join(["got", *got, ".", "need", *items, ".", "still"])


def examples(n: int, seed: int = 0, min_len: int = MIN_LEN, max_len: int = MAX_LEN) -> list[Example]:
    """Test prompts: N items, N-1 of them got (in random order), the answer the one left."""
    return one_missing(n, seed, list(range(min_len, max_len + 1)), ITEMS, prompt)


def training_examples(n: int, seed: int = 0) -> list[Example]:
    """Short lists (N 2..4) after 0..MAX_FILL filler words; m of the N items got (uniform in
    0..N-1 half the time, N-1 otherwise); the answer a random item not got."""
    lengths = list(range(MIN_LEN, TRAIN_MAX_LEN + 1))

    def make(rng: random.Random, i: int) -> Example:
        length = lengths[i % len(lengths)]
        items = rng.sample(ITEMS, length)
        m = rng.randrange(length) if rng.random() < 0.5 else length - 1
        got = rng.sample(items, m)
        left = [x for x in items if x not in got]
        text = " ".join([FILLER] * rng.randint(0, MAX_FILL) + [prompt(items, got)])
        distractor = rng.choice(got) if got else rng.choice(ITEMS)
        return Example(text, " " + rng.choice(left), " " + distractor, f"len{length}")

    return drawn(n, seed, make)
