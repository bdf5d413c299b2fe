"""The Laundry List task of Merullo et al. 2024 ("Talking Heads"), in its "missing item" form.

``"I need to buy the cake, the ring, the book and the hat. I already bought the book, the hat and the
cake, so I still need the"`` -> ``" ring"``. N distinct items (N in 2..10; variants ``len2`` ...
``len10``), then N-1 of them again in a random order: the answer is the one not repeated. The
paper's template is not published; this is the spec's reconstruction (wave2-specs.md, E3.5). The
distractor is a random repeated item, so ``eval``'s accuracy is answer vs one rival; the
list-position analyses (``centroid-replace``) score the argmax over all N items, as the spec does.
"""

from __future__ import annotations

import random
from collections.abc import Callable

from analyses.tasks.base import Example, drawn
from analyses.tasks.recall import ITEMS

MIN_LEN, MAX_LEN = 2, 10
WORDS = ["I", "need", "to", "buy", "the", ",", "and", ".", "already", "bought", "so", "still"]


def _listed(items: list[str]) -> str:
    """'the a, the b and the c'."""
    named = [f"the {x}" for x in items]
    return named[0] if len(named) == 1 else ", ".join(named[:-1]) + " and " + named[-1]


def one_missing(n: int, seed: int, lengths: list[int], items: list[str] | tuple[str, ...],
                render: Callable[[list[str], list[str]], str]) -> list[Example]:
    """The missing-item form over any vocabulary and template: N distinct items, N-1 of them again
    in a random order (``render(items, repeated)`` writes the prompt); the answer is the item not
    repeated, the distractor a random repeated one. Shared with the trained toy's compact form."""

    def make(rng: random.Random, i: int) -> Example:
        length = lengths[i % len(lengths)]
        listed = rng.sample(items, length)
        missing = rng.randrange(length)
        repeated = [x for j, x in enumerate(listed) if j != missing]
        rng.shuffle(repeated)
        return Example(render(listed, repeated), " " + listed[missing], " " + rng.choice(repeated), f"len{length}")

    return drawn(n, seed, make)


def examples(n: int, seed: int = 0, min_len: int = MIN_LEN, max_len: int = MAX_LEN) -> list[Example]:
    return one_missing(n, seed, list(range(min_len, max_len + 1)), ITEMS, lambda items, bought: (
        f"I need to buy {_listed(items)}. I already bought {_listed(bought)}, so I still need the"))
