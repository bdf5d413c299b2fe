"""Paper 3 (Talking Heads) on a trained toy, toy:laundry (docs/composition.md): the compact Laundry
List task with the got items first, its short-list training curriculum, the recipe that trains on
the curriculum but is scored on the test prompts, and the finding on the shipped checkpoint (real
model, no mocks): layer-1 movers attend from the query to the missing item, less as lists grow, and
recall-edit at its defaults finds a one-component edit that gains on long lists held out."""

from __future__ import annotations

import pytest
import torch

from analyses.registry import get, run_analysis
from analyses.registry.defaults import ModelFacts, resolve_defaults
from analyses.tasks import TASKS, task_examples
from analyses.tasks.laundry_toy import FILLER, ITEMS, MAX_LEN, TRAIN_MAX_LEN, WORDS
from analyses.toys.recipes import RECIPES


def _parts(prompt: str) -> tuple[list[str], list[str], list[str]]:
    """(filler words, got items, list items) of ``filler.. got X Y . need A B C . still``."""
    words = prompt.split()
    start = words.index("got")
    need = words.index("need")
    return words[:start], words[start + 1 : need - 1], words[need + 1 : -2]


def test_test_prompts_miss_exactly_one_item_which_is_the_answer():
    examples = task_examples("laundry-toy", 270, seed=0, split="test")
    assert {e.variant for e in examples} == {f"len{n}" for n in range(2, MAX_LEN + 1)}
    for e in examples:
        filler, got, items = _parts(e.prompt)
        assert not filler and e.prompt.endswith(". still") and set(e.prompt.split()) <= set(WORDS + ITEMS)
        assert len(items) == int(e.variant[3:]) == len(set(items)) and sorted(got) == sorted(set(got))
        assert set(items) - set(got) == {e.answer.strip()} and e.distractor.strip() in got
    assert task_examples("laundry-toy", 40, seed=1) == TASKS["laundry-toy"](40, 1)  # seeded


def test_training_prompts_are_short_lists_whose_filler_reaches_every_test_position():
    """Lists of at most TRAIN_MAX_LEN items, any number of them got, the answer never a got item;
    with the filler the longest training prompt is as long as the longest test prompt, so no
    position a test prompt uses is left untrained."""
    longest_test = max(len(e.prompt.split()) for e in task_examples("laundry-toy", 90, seed=0))
    lengths, counts = [], set()
    for e in task_examples("laundry-toy-train", 2000, seed=0, split="train"):
        filler, got, items = _parts(e.prompt)
        assert set(filler) <= {FILLER} and 2 <= len(items) <= TRAIN_MAX_LEN and set(got) <= set(items)
        assert e.answer.strip() in items and e.answer.strip() not in got
        lengths.append(len(e.prompt.split()))
        counts.add((len(items), len(got)))
    assert max(lengths) == longest_test
    assert counts == {(n, m) for n in range(2, TRAIN_MAX_LEN + 1) for m in range(n)}  # the graded curriculum


def test_the_recipe_trains_on_its_train_task_and_is_scored_on_its_task():
    """``Recipe.train_task``: the batches come from the curriculum (filler words in them), while
    ``task`` (what held-out scores and the model's own task use) stays the test prompts."""
    from analyses.toys.checkpoints import fast_tokenizer
    from analyses.toys.train import _batch

    recipe = RECIPES["laundry"]
    assert recipe.task == "laundry-toy" and recipe.train_task == "laundry-toy-train" and recipe.attn_only
    assert recipe.about.startswith("paper 3 (")
    tokenizer = fast_tokenizer(list(recipe.words), recipe.bos, recipe.specials)
    ids, mask, rows, cols, toks = _batch(tokenizer, recipe, 0)
    assert tokenizer.convert_tokens_to_ids(FILLER) in ids[mask.bool()].tolist()


# ---- the finding on the shipped toy -------------------------------------------------------------


@pytest.fixture(scope="module")
def toy():
    from sessions.loading import load

    return load("toy:laundry", device="cpu")


def _mover_attention(toy, n_items: int, n: int = 60) -> tuple[float, float]:
    """Mean over layer-1 heads and prompts of the attention from the last token to the missing
    item's list position, and to a got item's list position (per item)."""
    model, tok = toy.hooked.model, toy.tokenizer
    to_missing = to_got = 0.0
    examples = [e for e in task_examples("laundry-toy", 9 * n, seed=4, split="test") if e.variant == f"len{n_items}"]
    for e in examples:
        words = e.prompt.split()
        start = words.index("need") + 1
        items = words[start : start + n_items]
        ids = torch.tensor([tok(e.prompt)["input_ids"]])
        with torch.no_grad():
            row = model(input_ids=ids, output_attentions=True).attentions[1][0, :, -1].mean(0)
        k = items.index(e.answer.strip())
        to_missing += float(row[start + k])
        to_got += float(sum(row[start + j] for j in range(n_items) if j != k)) / (n_items - 1)
    return to_missing / len(examples), to_got / len(examples)


def test_layer1_heads_are_movers_that_crowd_on_long_lists(toy):
    """The model answers by attending from the query to the item not got (inhibition keeps it off
    the got ones), and that attention thins out on lists longer than any it was trained on."""
    short, long = _mover_attention(toy, 3), _mover_attention(toy, 10)
    assert short[0] > 0.8 and short[1] < 0.05, short
    assert long[0] < 0.5 * short[0] and long[0] > 3 * long[1], long


def test_recall_edit_at_its_defaults_finds_an_edit_that_restores_long_lists(toy):
    """The paper's Laundry List gain: the edit is chosen on the search sample and measured on held-
    out prompts; on lists of 8-10 items it gains at least 5 points (measured: about +18), short
    lists stay solved."""
    values = resolve_defaults(get("recall-edit"), ModelFacts.of("toy:laundry", toy.hooked))  # as the CLI and TUI do
    assert values["task"] == "laundry-toy"  # the model's own task by default
    table = run_analysis(toy, "recall-edit", **values)
    rows = dict(zip(table.labels, range(len(table.labels))))
    before, after, n = table.columns["before"], table.columns["after"], table.columns["n"]
    assert all(before[rows[f"len{k}"]] == 1.0 for k in (2, 3, 4))  # the lengths trained on
    assert before[rows["len10"]] < 0.8  # and it fails beyond them
    long = [rows[f"len{k}"] for k in (8, 9, 10)]
    gain = sum((after[i] - before[i]) * n[i] for i in long) / sum(n[i] for i in long)
    assert gain >= 0.05 + 0.05, (table.meta["edit"], gain)  # 5 points, with as much again of margin
    assert table.meta["held_out_gain"] > 0.02
