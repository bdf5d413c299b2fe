"""Issue 24's paper-2 design with an XOR look-up (docs/neurons.md, "A language model's many
features"): every text holds one marker among topic filler, and the name after the query is the
marker's own after ``?`` and its partner's after ``!``, so no head's output gives it linearly."""

from __future__ import annotations

from analyses.tasks import TASKS, task_examples
from analyses.tasks.lookup_xor import ANSWERS, MARKERS, QUERIES, WORDS, answer_of
from analyses.toys.recipes import RECIPES, STUDY_RECIPES


def test_the_answer_is_the_markers_own_name_after_one_query_and_its_partners_after_the_other():
    examples = task_examples("lookup-xor", 400, seed=0, split="test")
    assert {e.variant for e in examples} == {"own", "partner"}
    for e in examples:
        words = e.prompt.split()
        assert words[-1] in QUERIES and set(words) <= set(WORDS)
        markers = [w for w in words if w in MARKERS]
        assert len(markers) == 1 and words[-2] not in MARKERS
        k, q = MARKERS.index(markers[0]), QUERIES.index(words[-1])
        assert e.answer == " " + ANSWERS[answer_of(k, q)] and e.distractor == " " + ANSWERS[answer_of(k, 1 - q)]
    assert task_examples("lookup-xor", 50, seed=1) == TASKS["lookup-xor"](50, 1)  # seeded


def test_a_name_is_no_sum_of_marker_and_query():
    """Each name follows two (marker, query) cells that share neither marker nor query, and the two
    crossed cells give another name: the XOR that an additive (linear) read-out cannot produce."""
    for j in range(len(ANSWERS)):
        cells = [(k, q) for k in range(len(MARKERS)) for q in (0, 1) if answer_of(k, q) == j]
        assert len(cells) == 2 and cells[0][0] != cells[1][0] and cells[0][1] != cells[1][1]
        (k0, q0), (k1, q1) = cells
        assert answer_of(k0, q1) != j and answer_of(k1, q0) != j


def test_the_recipe_is_a_study_not_a_shipped_toy():
    """Its margin over random neurons was a draw of the sample (docs/neurons.md), so it is trained
    on request (`workbench train lookup-xor`), not listed as illustrating the paper."""
    assert "lookup-xor" in STUDY_RECIPES and "lookup-xor" not in RECIPES
    recipe = STUDY_RECIPES["lookup-xor"]
    assert recipe.every_position and recipe.task == "lookup-xor" and tuple(recipe.words) == WORDS
