"""ioi-marked: IOI where a name followed by "left" does not count; its five unmarked names are the
slots name-arith edits."""

from __future__ import annotations

import collections

import pytest

from analyses.errors import BadInput
from analyses.mamba.mixer import name_slots, slot_markers
from analyses.mamba.task import name_token_ids
from analyses.tasks import task_examples, task_pairs
from analyses.tasks.ioi_marked import MARKER, VARIANTS
from analyses.toys.checkpoints import fast_tokenizer
from analyses.toys.recipes import RECIPES


@pytest.fixture(scope="module")
def tok():
    return fast_tokenizer(list(RECIPES["ioi-mamba-shift"].words))


def _counted(prompt: str) -> list[str]:
    """The names that count: every name not followed by the marker, in order."""
    from analyses.tasks.ioi import NAMES

    words = prompt.replace(",", " ").replace(".", " ").split()
    return [w for i, w in enumerate(words) if w in NAMES and (i + 1 == len(words) or words[i + 1] != MARKER)]


def test_the_answer_is_the_counted_name_said_once_and_marked_names_would_mislead():
    examples = task_examples("ioi-marked", 600, seed=1)
    misleading = 0
    for e in examples:
        counted = _counted(e.prompt)
        assert len(counted) == 5 and counted.count(e.answer.strip()) == 1 and counted.count(e.distractor.strip()) == 2
        every = _counted(e.prompt.replace(f" {MARKER}", ""))  # the marked names counted too
        misleading += [n for n in every if every.count(n) == 1] != [e.answer.strip()]
    assert misleading > 200  # counting marked names too would often give no answer, or two
    assert task_examples("ioi-marked", 50, seed=3) == task_examples("ioi-marked", 50, seed=3)
    assert set(collections.Counter(e.variant for e in examples)) == set(VARIANTS)


def test_every_word_is_one_token_of_the_toys_vocabulary(tok):
    for e in task_examples("ioi-marked", 200, seed=2):
        assert tok.unk_token_id not in tok(e.prompt)["input_ids"]
        assert len(tok(e.answer, add_special_tokens=False)["input_ids"]) == 1


def test_pairs_have_equal_length_and_the_fresh_name_as_corrupted_answer(tok):
    for p in task_pairs("ioi-marked", 60, seed=1):
        assert len(tok(p.clean)["input_ids"]) == len(tok(p.corrupt)["input_ids"])
        assert _counted(p.corrupt).count(p.distractor.strip()) == 1 and p.answer.strip() not in p.corrupt


def test_name_slots_leave_out_marked_names(tok):
    e = task_examples("ioi-marked", 40, seed=4)
    marked = next(x for x in e if f" {MARKER}" in x.prompt)
    ids = tok(marked.prompt)["input_ids"]
    names = name_token_ids(tok)
    slots = name_slots(ids, names, slot_markers(tok, "ioi-marked"))
    assert [tok.decode([ids[p]]).strip() for p in slots] == _counted(marked.prompt)
    assert len(name_slots(ids, names)) > 5  # without the task's markers every name is a slot
    with pytest.raises(BadInput, match="three-name IOI"):
        slot_markers(tok, "count01")
