"""Paper 1's toys: the planted model is a test fixture that is never offered as showing the
finding; the repeated-segment task and its every-position recipe; and the finding on the shipped
toy:erasure-repeat, learned by training alone (docs/erasure-toy.md): layer 1 erases writer L0H2 as
a set, by all three checks of erasure-verdict at its defaults."""

from __future__ import annotations

from analyses.registry import get, run_analysis
from analyses.registry.defaults import ModelFacts, resolve_defaults
from analyses.tasks import task_examples
from analyses.tasks.repeat import LENGTH, WORDS, second_copy
from analyses.toys.recipes import FIXTURE_RECIPES, RECIPES, TRAIN_RECIPES
from sessions.catalogue import list_models


def test_the_planted_model_is_a_fixture_that_loads_but_is_not_listed():
    from sessions.loading import load

    specs = [m["spec"] for m in list_models()]
    assert "toy:erasure-planted" not in specs and "toy:erasure" not in specs
    assert "erasure-planted" in FIXTURE_RECIPES and "erasure-planted" in TRAIN_RECIPES
    assert "erasure-planted" not in RECIPES  # nothing planted is offered as a finding
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


def test_the_trained_toy_is_listed_as_paper_1_with_its_own_writer():
    models = {m["spec"]: m for m in list_models()}
    assert "paper 1" in models["toy:erasure-repeat"]["about"]
    facts = ModelFacts.of("toy:erasure-repeat")
    assert facts.task == "repeat" and facts.writer == "L0H2"
    assert ModelFacts.of("toy:ioi").writer is None  # other models keep the declared writer, L0H0
    assert resolve_defaults(get("erasure-scatter"), facts)["writer"] == "L0H2"


def test_layer_1_erases_the_writer_as_a_set_on_the_shipped_toy_at_default_settings():
    from sessions.loading import load

    toy = load("toy:erasure-repeat", device="cpu")
    params = resolve_defaults(get("erasure-verdict"), ModelFacts.of("toy:erasure-repeat", toy.hooked))
    assert params["task"] == "repeat" and params["writer"] == "L0H2"
    m = run_analysis(toy, "erasure-verdict", **params).meta
    assert m["set_verdict"] == "erasure", m["set_verdict"]
    # Measured on 256 texts: set L1H1-L1H3, summed PR -0.31, r -0.93, stream PR 0.41 -> 0.90.
    assert m["set_r"] <= -0.8 and m["set_pr"] <= -0.2, (m["set_r"], m["set_pr"])
    assert m["stream_before"] <= 0.6 and m["stream_after"] >= 0.8, (m["stream_before"], m["stream_after"])
    assert m["restored"] >= 0.6, m["restored"]


def test_words_outside_a_vocabulary_without_unk_are_bad_input(capsys):
    """Its tokenizer has no [UNK]: the tokenizers library raises a bare Exception on any other
    word; a prompt, a token and a task's texts name the words instead, and the CLI exits 2."""
    import pytest

    from analyses.errors import BadInput
    from analyses.tokens import encode_prompt, resolve_token
    from sessions.loading import load
    from workbench.cli import main

    tok = load("toy:erasure-repeat", device="cpu", parity=False).tokenizer
    assert encode_prompt(tok, "t1 t2 t3") and resolve_token(tok, "t4") is not None
    for call in (lambda: encode_prompt(tok, "t1 hello t2"), lambda: resolve_token(tok, "hello")):
        with pytest.raises(BadInput, match="hello.* not in the model's vocabulary|not in the model's vocabulary: 'hello'"):
            call()
    assert main(["run", "erasure-verdict", "--model", "toy:erasure-repeat", "--task", "ioi", "--n", "4"]) == 2
    assert "not in the model's vocabulary" in capsys.readouterr().err
