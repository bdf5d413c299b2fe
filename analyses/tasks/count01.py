"""Count01 (Zsámboki et al. 2025): are there more 1s than 0s in a string over {0, 1, 2}?

Our exact format (the paper's code is not public):

- A prompt is ``n`` symbols separated by spaces, then ``=``: ``"1 0 2 1 ="``. ``n`` is uniform
  in [4, 16] (``len4`` ... ``len16`` are the variants).
- Noise: each string draws a noise rate uniformly from [0, 0.5]; each symbol is a ``2`` with that
  probability. The other symbols are 0s and 1s.
- Label: ``yes`` when #1 > #0, else ``no`` (ties are ``no``). Labels are balanced: half the
  strings are positive; among the negatives, a third are exact ties whenever the number of 0/1
  symbols is even, so a model must count exactly rather than guess near the boundary.
- End-of-sequence rule: after the answer comes ``[EOS]`` (the ``target`` of each example); the
  model is trained and evaluated on producing it.
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn

MIN_LEN, MAX_LEN = 4, 16
WORDS = ["0", "1", "2", "=", "yes", "no"]
EOS = "[EOS]"


def _string(rng: random.Random, n: int, positive: bool) -> list[str]:
    noise = rng.uniform(0.0, 0.5)
    k = sum(rng.random() >= noise for _ in range(n))  # symbols that are 0 or 1
    if k == 0:
        k = 1
    if positive:
        ones = rng.randint(k // 2 + 1, k)
    elif k % 2 == 0 and rng.random() < 1 / 3:
        ones = k // 2  # an exact tie
    else:
        ones = rng.randint(0, (k - 1) // 2)
    symbols = ["1"] * ones + ["0"] * (k - ones) + ["2"] * (n - k)
    rng.shuffle(symbols)
    return symbols


def examples(n: int, seed: int = 0, min_len: int = MIN_LEN, max_len: int = MAX_LEN) -> list[Example]:
    lengths = list(range(min_len, max_len + 1))

    def make(rng: random.Random, i: int) -> Example:
        length = lengths[(i // 2) % len(lengths)]
        positive = i % 2 == 0
        symbols = _string(rng, length, positive)
        label = "yes" if symbols.count("1") > symbols.count("0") else "no"
        assert (label == "yes") == positive
        other = "no" if label == "yes" else "yes"
        return Example(" ".join(symbols) + " =", " " + label, " " + other, f"len{length}", target=EOS)

    return drawn(n, seed, make)
