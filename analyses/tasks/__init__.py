"""Prompt datasets: seeded generators for the papers' tasks, and user prompt-pair files."""

from __future__ import annotations

import zlib
from collections.abc import Callable

from analyses.errors import BadInput
from analyses.preparation import step
from analyses.tasks import (
    count01, count01_eos, ioi, ioi_marked, ioi_patterns, laundry, laundry_toy, lookup, lookup_lm, lookup_multi,
    lookup_xor, recall,
    repeat,
)
from analyses.tasks.base import Example, Pair

# task name -> generator(n, seed) of Examples
TASKS: dict[str, Callable[..., list[Example]]] = {
    "ioi": lambda n, seed=0: ioi.examples(n, seed, kind="two"),
    "ioi-abc": lambda n, seed=0: ioi.examples(n, seed, kind="three"),
    "count01": count01.examples,
    "recall": recall.examples,
    "lookup": lookup.examples,
    "count01-eos": count01_eos.examples,
    "laundry": laundry.examples,
    "lookup-multi": lookup_multi.examples,
    # the Mamba IOI paper's five corruption patterns, one task each (tasks/ioi_patterns.py)
    **{name: (lambda n, seed=0, _p=name: ioi_patterns.examples(_p, n, seed)) for name in ioi_patterns.PATTERNS},
    "repeat": repeat.examples,
    "lookup-lm": lookup_lm.examples,
    "ioi-marked": ioi_marked.examples,
    "lookup-xor": lookup_xor.examples,
    # paper 3's trained toy: test prompts, and the short-list curriculum it is trained on
    "laundry-toy": laundry_toy.examples,
    "laundry-toy-train": laundry_toy.training_examples,
}

# task name -> generator(n, seed) of clean/corrupted Pairs, for the tasks that have a corruption
PAIR_TASKS: dict[str, Callable[..., list[Pair]]] = {
    "ioi": lambda n, seed=0: ioi.pairs(n, seed, kind="two"),
    "ioi-abc": lambda n, seed=0: ioi.pairs(n, seed, kind="three"),
    **{name: (lambda n, seed=0, _p=name: ioi_patterns.pairs(_p, n, seed)) for name in ioi_patterns.PATTERNS},
    "ioi-marked": ioi_marked.pairs,
}

# tasks whose prompts name-arith edits (three-name IOI, five name slots), with the words that make
# the name before them no slot (ioi-marked: "X left" does not count)
NAME_SLOT_TASKS: dict[str, tuple[str, ...]] = {
    "ioi-abc": (),
    "ioi-marked": ioi_marked.SLOT_MARKERS,
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


def task_pairs(task: str, n: int, seed: int = 0, same_length: Callable[[Pair], int] | None = None) -> list[Pair]:
    """``n`` clean/corrupted pairs of ``task``; with ``same_length`` (a pair's token length), only
    pairs as long as the first, so that positions line up across the sample."""
    if task not in PAIR_TASKS:
        raise BadInput(f"task {task!r} has no clean/corrupted pairs; tasks with pairs: {', '.join(PAIR_TASKS)}")
    if n <= 0:
        raise BadInput("--n must be positive")
    if same_length is None:
        return PAIR_TASKS[task](n, seed)
    out: list[Pair] = []
    want = None
    for round_ in range(50):
        for p in PAIR_TASKS[task](4 * n, seed + 7919 * round_):
            step(len(out), n, "measuring pairs")
            length = same_length(p)
            want = length if want is None else want
            if length == want:
                out.append(p)
                if len(out) == n:  # the first n of that length: measuring the rest changes nothing
                    return out
    raise BadInput(f"could not find {n} pairs of task {task} with the same token length")


def default_inputs(task: str | None) -> dict[str, str]:
    """What the forms open on for a model trained on ``task``: one of its prompts with its answer
    and distractor, and a clean/corrupted pair (``pair_*``) of the same task where it has one
    (else two equally long prompts with opposite answers); IOI for any other model."""
    from analyses.toys import DEFAULT_ANSWER, DEFAULT_DISTRACTOR, DEFAULT_PROMPT

    ioi_pair = {"pair_clean": DEFAULT_PROMPT, "pair_corrupt": DEFAULT_PROMPT.replace("John gave", "Mary gave"),
                "pair_answer": DEFAULT_ANSWER, "pair_distractor": DEFAULT_DISTRACTOR}
    if task not in TASKS or task == "ioi":
        return {"prompt": DEFAULT_PROMPT, "answer": DEFAULT_ANSWER, "distractor": DEFAULT_DISTRACTOR, **ioi_pair}
    examples = task_examples(task, 200, seed=0, split="test")
    first = examples[0]
    out = {"prompt": first.prompt, "answer": first.answer, "distractor": first.distractor}
    if task in PAIR_TASKS:
        p = PAIR_TASKS[task](1, 0)[0]
        return {**out, "pair_clean": p.clean, "pair_corrupt": p.corrupt, "pair_answer": p.answer,
                "pair_distractor": p.distractor}
    size = len(first.prompt.split())
    other = next((e for e in examples if len(e.prompt.split()) == size and e.answer == first.distractor), None)
    if other is None:
        return {**out, **ioi_pair}
    return {**out, "pair_clean": first.prompt, "pair_corrupt": other.prompt, "pair_answer": first.answer,
            "pair_distractor": other.answer}


def vocabulary() -> list[str]:
    """Every word any built-in task uses, for the toy models' word-level tokenizer."""
    return list(dict.fromkeys(ioi.NAMES + ioi.PLACES + ioi.OBJECTS + ioi.WORDS + count01.WORDS + recall.ITEMS + recall.WORDS))


__all__ = ["NAME_SLOT_TASKS", "PAIR_TASKS", "SPLITS", "TASKS", "default_inputs", "task_pairs", "Example", "Pair", "in_split", "task_examples", "vocabulary"]
