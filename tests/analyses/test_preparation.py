"""Input preparation reports its progress and stops when asked, and draws the same samples as ever."""

from __future__ import annotations

import pytest

from analyses.errors import Cancelled
from analyses.preparation import watching
from analyses.tasks import PAIR_TASKS, task_examples, task_pairs


def test_a_stop_ends_sampling_at_once_and_nothing_watches_outside_the_block():
    with watching(should_stop=lambda: True), pytest.raises(Cancelled):
        task_pairs("ioi", 10**8, same_length=lambda p: len(p.clean.split()))  # would take hours and GBs
    with watching(should_stop=lambda: True), pytest.raises(Cancelled):
        task_examples("count01", 10**8)
    assert len(task_examples("count01", 300)) == 300  # outside: no watch, no stop


def test_progress_names_the_stage_with_its_total():
    seen = []
    with watching(lambda what, done, total: seen.append((what, done, total))):
        task_pairs("ioi", 2000, same_length=lambda p: len(p.clean.split()))
    assert seen and seen[0][0] == "sampling pairs" and seen[0][2] == 8000  # 4n drawn, then measured
    assert all(done <= total for _, done, total in seen)


def test_a_same_length_sample_is_the_first_n_pairs_of_that_length():
    length = lambda p: len(p.clean.split())  # noqa: E731
    drawn = PAIR_TASKS["ioi-abc"](4 * 50, 3)
    want = [p for p in drawn if length(p) == length(drawn[0])][:50]
    assert task_pairs("ioi-abc", 50, 3, same_length=length) == want
