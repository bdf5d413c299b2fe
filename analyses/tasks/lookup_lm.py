"""Context look-ups inside a language model's many features: issue 24's fourth paper-2 design.

toy:lookup-multi's texts vary only by which marker they hold, so every neuron's top texts sort by
marker and a one-n-gram rule explains any neuron, random ones included. Here most of a text is
filler a model is trained to predict at every position (recipe ``lookup-lm``, ``every_position``):
each text has a latent topic, one of ``TOPICS``, and each filler word (96, ``w0`` .. ``w95``)
comes from the topic's 16 ``FAVOURED`` words (drawn once from a fixed seed) with probability
``FAVOURED_SHARE``, else from all of them; so most MLP neurons serve a diffuse feature (the topic,
read off many words) that no one n-gram names. In half the prompts one of eight ``MARKERS`` (the
IOI places) stands among the filler; the prompt ends with the query ``?`` and the answer is the
marker's own name (``store`` -> `` Mary``, ...), or `` none`` without a marker; the distractor is
another name. The words are this task's own (the recipe's vocabulary), so no other toy's tokenizer
changes. What the attempts found: docs/neurons.md, "A language model's many features".
"""

from __future__ import annotations

import random

from analyses.tasks.base import Example, drawn
from analyses.tasks.ioi import NAMES, PLACES

FILLERS = tuple(f"w{i}" for i in range(96))
MARKERS = tuple(PLACES)  # 8 context features
ANSWERS = tuple(NAMES[: len(MARKERS)])  # marker i raises name i
NONE = "none"
QUERY = "?"
MIN_LEN, MAX_LEN = 8, 16  # filler words before the query
MARKER_SHARE = 2  # one prompt in MARKER_SHARE has no marker
TOPICS = 6  # a text's latent topic: which fillers it favours
FAVOURED_SHARE = 0.85  # a filler comes from the topic's favoured words, else from all of them
_draw = random.Random(24)
FAVOURED = tuple(tuple(_draw.sample(FILLERS, 16)) for _ in range(TOPICS))
WORDS = (*FILLERS, *MARKERS, *ANSWERS, NONE, QUERY)


def topic_filler(rng: random.Random) -> list[str]:
    """MIN_LEN..MAX_LEN filler words of one random topic (each from its favoured words with
    probability FAVOURED_SHARE, else from all fillers)."""
    topic = FAVOURED[rng.randrange(TOPICS)]
    return [rng.choice(topic if rng.random() < FAVOURED_SHARE else FILLERS)
            for _ in range(rng.randint(MIN_LEN, MAX_LEN))]


def examples(n: int, seed: int = 0) -> list[Example]:
    def make(rng: random.Random, i: int) -> Example:
        words = topic_filler(rng)
        if i % MARKER_SHARE:
            k = rng.randrange(len(MARKERS))
            words.insert(rng.randrange(len(words)), MARKERS[k])
            answer = ANSWERS[k]
            distractor = ANSWERS[(k + 1 + rng.randrange(len(MARKERS) - 1)) % len(MARKERS)]
            variant = "marker"
        else:
            answer, distractor, variant = NONE, rng.choice(ANSWERS), "plain"
        return Example(" ".join(words + [QUERY]), " " + answer, " " + distractor, variant)

    return drawn(n, seed, make)
