"""The paper's further experiments on the hand-built exact eraser (``test_erasure.build_exact``):
the modified DLA (E1.4c), resampling the writer's input (fig. 4), and the loss importance of a
layer (E1.6), each against values known by construction."""

from __future__ import annotations

import numpy as np
import pytest
from test_erasure import _expected_points, build_exact

from analyses.erasure import PromptSet
from analyses.erasure.experiments import input_resample, layer_importance, modified_dla
from analyses.errors import BadInput
from workbench.cli import main


@pytest.fixture(scope="module")
def exact(tmp_path_factory):
    return build_exact(tmp_path_factory.mktemp("exact_experiments"))


def test_modified_dla_is_the_writer_dla_until_the_eraser_and_zero_after(exact):
    lm, corpus = exact
    table = modified_dla(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0")
    rows = {r["label"]: r for r in table.rows()}
    mean_x = float(np.mean(_expected_points()))
    assert table.meta["writer_dla"] == pytest.approx(mean_x, abs=1e-4)
    assert rows["resid_mid0"]["modified_dla"] == pytest.approx(mean_x, abs=1e-4)
    assert rows["resid_pre0"]["modified_dla"] == pytest.approx(0, abs=1e-5)
    assert table.meta["modified_dla"] == pytest.approx(0, abs=1e-5)  # the eraser removed all of it
    assert table.meta["stream"] == "resid_post1" and rows["resid_post1"]["share"] == pytest.approx(0, abs=1e-4)


def test_resampling_the_writers_input_moves_its_dla_and_the_eraser_follows_exactly(exact):
    """The writer reads its own token: with the next text's token at that position it writes
    that token's vector, so its DLA toward the clean next token changes; the eraser reads the
    writer's output at its own position and writes minus it, before and after."""
    lm, corpus = exact
    table = input_resample(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0")
    rows = {r["label"]: r for r in table.rows()}
    for col in ("dla", "dla_after"):
        assert rows["L1H0"][col] == pytest.approx(-rows["L0H0"][col], abs=1e-4)
        assert rows["L0H1"][col] == 0 and rows["L1H1"][col] == 0
    assert abs(rows["L0H0"]["change"]) > 0.1
    assert table.meta["writer_dla_after"] == rows["L0H0"]["dla_after"]
    with pytest.raises(BadInput, match="needs a head"):
        input_resample(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0MLP")


def test_an_exactly_erased_writer_costs_no_loss_while_its_eraser_does(exact):
    """Resample-ablating the writer changes what it writes, and the eraser removes the new write
    just as exactly: the stream, and so the loss, are unchanged (the paper's point: a large DLA,
    little importance). Ablating the eraser leaves the writer's write in: the loss moves."""
    lm, corpus = exact
    prompts = PromptSet(corpus=corpus)
    layer0 = layer_importance(lm.hooked, lm.tokenizer, prompts, layer=0)
    assert max(abs(v) for col in ("median", "low", "high", "mean") for v in layer0.columns[col]) < 1e-4
    layer1 = {r["label"]: r for r in layer_importance(lm.hooked, lm.tokenizer, prompts, layer=1).rows()}
    assert abs(layer1["L1H0"]["mean"]) > 0.1 and layer1["L1H1"]["mean"] == pytest.approx(0, abs=1e-5)
    with pytest.raises(BadInput, match="--layer"):
        layer_importance(lm.hooked, lm.tokenizer, prompts, layer=2)


def test_cli_runs_the_three_and_refuses_bad_input_before_loading(exact, capsys):
    lm, corpus = exact
    for name in ("erasure-modified", "erasure-input", "erasure-importance"):
        assert main(["run", name, "--model", lm.info["path"], "--corpus", corpus]) == 0
    out = capsys.readouterr().out
    assert "modified DLA at resid_post1 +0.000" in out and "clean median loss" in out, out
    code = main(["run", "erasure-input", "--model", "toy:nope", "--task", "ioi", "--writer", "L0Q1"])
    assert code == 2 and "not a node" in capsys.readouterr().err
