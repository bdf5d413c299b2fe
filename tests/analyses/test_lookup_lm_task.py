"""Issue 24's fourth paper-2 design (docs/neurons.md, "A language model's many features"): the
task's texts are topic-coloured filler with a marker in half of them, answered by the marker's own
name at the query, in a vocabulary of the task's own that the study recipe trains on."""

from __future__ import annotations

from analyses.tasks import TASKS, task_examples
from analyses.tasks.lookup_lm import ANSWERS, FAVOURED, FILLERS, MARKERS, NONE, QUERY, WORDS
from analyses.toys.recipes import RECIPES, STUDY_RECIPES


def test_marker_prompts_are_answered_by_their_markers_name_and_plain_ones_by_none():
    examples = task_examples("lookup-lm", 400, seed=0, split="test")
    assert {e.variant for e in examples} == {"marker", "plain"}
    for e in examples:
        words = e.prompt.split()
        assert words[-1] == QUERY and set(words) <= set(WORDS)
        markers = [w for w in words if w in MARKERS]
        if e.variant == "marker":
            assert len(markers) == 1 and e.answer == " " + ANSWERS[MARKERS.index(markers[0])]
            assert e.distractor != e.answer and e.distractor.strip() in ANSWERS
        else:
            assert not markers and e.answer == " " + NONE
    assert task_examples("lookup-lm", 50, seed=1) == TASKS["lookup-lm"](50, 1)  # seeded


def test_fillers_favour_a_topic_and_the_recipe_is_a_study_not_a_shipped_toy():
    """Most of a text's filler comes from one topic's favoured words (a diffuse feature no one
    word names); the recipe is trained on request, not shipped (the finding did not emerge)."""
    favoured_shares = []
    for e in task_examples("lookup-lm", 200, seed=2):
        fillers = [w for w in e.prompt.split() if w in FILLERS]
        favoured_shares.append(max(sum(w in topic for w in fillers) for topic in FAVOURED) / len(fillers))
    assert sum(favoured_shares) / len(favoured_shares) > 0.8
    assert "lookup-lm" in STUDY_RECIPES and "lookup-lm" not in RECIPES
    recipe = STUDY_RECIPES["lookup-lm"]
    assert recipe.every_position and recipe.task == "lookup-lm" and tuple(recipe.words) == WORDS
