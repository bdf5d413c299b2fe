"""Prompt datasets: seeded generators for the papers' tasks, and user prompt-pair files."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from analyses.errors import BadInput
from analyses.tasks import count01, ioi, recall
from analyses.tasks.base import Example, Pair

# task name -> generator(n, seed) of Examples
TASKS: dict[str, Callable[..., list[Example]]] = {
    "ioi": lambda n, seed=0: ioi.examples(n, seed, kind="two"),
    "ioi-abc": lambda n, seed=0: ioi.examples(n, seed, kind="three"),
    "count01": count01.examples,
    "recall": recall.examples,
}


SPLITS = ("train", "test", "all")
TEST_SHARE = 10  # one prompt in ten, by a hash of its text, is held out from training


def in_split(prompt: str, split: str) -> bool:
    """A fixed train/test split by prompt text: no test prompt is ever trained on, whatever the seeds."""
    if split == "all":
        return True
    return (zlib.crc32(prompt.encode()) % TEST_SHARE == 0) == (split == "test")


def task_examples(task: str, n: int, seed: int = 0, split: str = "all") -> list[Example]:
    """``n`` examples of ``task`` from ``split``, every variant about equally often."""
    if task not in TASKS:
        raise BadInput(f"unknown task {task!r}; tasks: {', '.join(TASKS)}")
    if n <= 0:
        raise BadInput("--n must be positive")
    if split not in SPLITS:
        raise BadInput(f"split must be one of {', '.join(SPLITS)}")
    if split == "all":
        return TASKS[task](n, seed)
    out: list[Example] = []
    round_ = 0
    while len(out) < n:
        batch = TASKS[task](n * (TEST_SHARE if split == "test" else 2), seed * 7919 + round_)
        out += [e for e in batch if in_split(e.prompt, split)]
        round_ += 1
    return out[:n]


def vocabulary() -> list[str]:
    """Every word any built-in task uses, for the toy models' word-level tokenizer."""
    return list(dict.fromkeys(ioi.NAMES + ioi.PLACES + ioi.OBJECTS + ioi.WORDS + count01.WORDS + recall.ITEMS + recall.WORDS))


__all__ = ["SPLITS", "TASKS", "Example", "Pair", "in_split", "task_examples", "vocabulary"]
