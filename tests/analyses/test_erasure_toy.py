"""Paper 1's toys: the planted model is a test fixture that is never offered as showing the
finding; the repeated-segment task and the every-position recipe that tried to make erasure emerge
by training alone (docs/erasure-toy.md)."""

from __future__ import annotations

from analyses.tasks import task_examples
from analyses.tasks.repeat import LENGTH, WORDS, second_copy
from analyses.toys.recipes import FIXTURE_RECIPES, RECIPES, TRAIN_RECIPES
from sessions.catalogue import list_models


def test_the_planted_model_is_a_fixture_that_loads_but_is_not_listed():
    from sessions.loading import load

    specs = [m["spec"] for m in list_models()]
    assert "toy:erasure-planted" not in specs and "toy:erasure" not in specs
    assert "erasure-planted" in FIXTURE_RECIPES and "erasure-planted" in TRAIN_RECIPES
    assert not any("erasure" in name for name in RECIPES)  # nothing planted is offered as a finding
    assert "TEST FIXTURE" in FIXTURE_RECIPES["erasure-planted"].about
    lm = load("toy:erasure-planted", device="cpu")
    assert lm.hooked.shape.n_layers == 3


def test_repeat_texts_are_a_segment_twice_then_noise():
    for e in task_examples("repeat", 50, seed=1, split="test"):
        tokens = (e.prompt + e.answer).split()
        k = int(e.variant.removeprefix("seg"))
        assert len(tokens) == LENGTH and 4 <= k <= 10 and set(tokens) <= set(WORDS)
        assert tokens[:k] == tokens[k:2 * k] and len(set(tokens[:k])) == k
        assert list(second_copy(e)) == list(range(k, 2 * k - 1))
        assert e.distractor != e.answer


def test_an_every_position_recipe_trains_on_every_next_token_with_its_own_words(tmp_path):
    import torch
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from analyses.toys.checkpoints import fast_tokenizer
    from analyses.toys.train import _batch, train

    recipe = TRAIN_RECIPES["erasure-repeat"]
    ids, _, rows, cols, toks = _batch(fast_tokenizer(list(recipe.words)), recipe, 0)
    assert ids.shape == (recipe.batch, LENGTH) and len(rows) == recipe.batch * (LENGTH - 1)
    assert torch.equal(toks, ids[rows, cols + 1])
    out = train("erasure-repeat", tmp_path / "m", steps=3)
    model = AutoModelForCausalLM.from_pretrained(out)
    assert model.config.vocab_size == 32 and model.config.n_positions == 24
    tokenizer = AutoTokenizer.from_pretrained(out)
    assert tokenizer("t0 t31")["input_ids"] == [0, 31]  # every id a word: no special tokens
    assert tokenizer.pad_token_id is None and model.config.bos_token_id is None
