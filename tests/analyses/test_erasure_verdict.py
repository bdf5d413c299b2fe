"""The eraser verdict: median PR, OV scatter and causal check side by side, per head and as a set,
on the hand-built exact eraser (``test_erasure.build_exact``) and a decoy head that points away
from the writer without reading it, every number by hand."""

from __future__ import annotations

import math

import pytest
from test_erasure import build_exact

from analyses.erasure import PromptSet
from analyses.erasure.verdict import SET, eraser_verdict
from workbench.cli import main


@pytest.fixture(scope="module")
def decoy(tmp_path_factory):
    return build_exact(tmp_path_factory.mktemp("decoy"), decoy=True)


def _rows(table):
    return {r["label"]: r for r in table.rows()}


def test_the_exact_eraser_passes_all_three_checks_alone_and_as_a_set(tmp_path):
    lm, corpus = build_exact(tmp_path)
    table = eraser_verdict(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0")
    rows = _rows(table)
    e = rows["L1H0"]
    assert e["pr"] == pytest.approx(-1, abs=1e-5) and e["pr_after"] == pytest.approx(0, abs=1e-5)
    assert e["r"] == pytest.approx(-1, abs=1e-5) and e["slope"] == pytest.approx(-1, abs=1e-5)
    assert e["verdict"] == "eraser" and rows["L1H1"]["verdict"] == "" and rows["L1H1"]["in_set"] == ""
    m = table.meta
    assert m["set"] == ["L1H0"] and m["set_verdict"] == "erasure" and m["erasers"] == ["L1H0"]
    assert m["stream_before"] == pytest.approx(0, abs=1e-5) and m["stream_after"] == pytest.approx(1, abs=1e-5)
    assert m["restored"] == pytest.approx(1, abs=1e-5) and m["points"] == 4 * 5 - 4


def test_a_decoy_at_pr_minus_one_is_flagged_as_misleading_not_as_an_eraser(decoy):
    """L1H1 sits at median PR -1 like the real eraser, but has no OV image of the writer (r is
    undefined) and keeps its PR when the writer leaves its values: a PR threshold alone would
    call it an eraser."""
    lm, corpus = decoy
    table = eraser_verdict(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0")
    rows = _rows(table)
    d = rows["L1H1"]
    assert d["pr"] == pytest.approx(-1, abs=1e-5) and d["pr_after"] == pytest.approx(-1, abs=1e-5)
    assert math.isnan(d["r"]) and d["verdict"] == "PR only: not scatter or causal"
    assert rows["L1H0"]["verdict"] == "eraser"
    s = rows[SET]
    assert s["pr"] == pytest.approx(-2, abs=1e-5) and s["pr_after"] == pytest.approx(-1, abs=1e-5)
    assert s["r"] == pytest.approx(-1, abs=1e-5)
    m = table.meta
    assert m["misleading"] == ["L1H1"] and m["erasers"] == ["L1H0"]
    # the stream: B f - B f - B f = -B f (PR -1); without the writer in layer 1's values, 0
    assert m["stream_before"] == pytest.approx(-1, abs=1e-5) and m["stream_after"] == pytest.approx(0, abs=1e-5)
    assert m["restored"] == pytest.approx(0.5, abs=1e-5) and m["set_verdict"] == "erasure"


def test_a_stricter_causal_bar_turns_the_set_verdict_and_says_why(decoy):
    lm, corpus = decoy
    table = eraser_verdict(lm.hooked, lm.tokenizer, PromptSet(corpus=corpus), "L0H0", restore=0.6)
    assert table.meta["set_verdict"] == "no erasure: not causal"


def test_cli_prints_the_three_checks_together(decoy, capsys):
    lm, corpus = decoy
    code = main(["run", "erasure-verdict", "--model", lm.info["path"], "--corpus", corpus])
    out = capsys.readouterr().out
    assert code == 0
    assert "erasure: set L1H0, L1H1 summed PR -2.00" in out and "flagged by PR only: L1H1" in out, out
    assert "PR only: not scatter or causal" in out and "fold raw" in out
