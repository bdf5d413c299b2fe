"""Every registered analysis, run by the real CLI on a shipped toy it supports, in text and in
``--json``: it exits 0, its text says what it found (a ``found`` line from its declaration's
headline), and its JSON is one strict JSON object (no NaN or Infinity, which JSON does not have)."""

from __future__ import annotations

import json
import math

import pytest

from analyses.registry import analyses
from analyses.report import column_kind, dumps, number
from workbench.cli import main

PROMPT = "When Mary and John went to the store, John gave a drink to"
IOI = ["--model", "toy:ioi", "--task", "ioi", "--n", "4"]
MAMBA = ["--model", "toy:ioi-mamba", "--task", "ioi-abc", "--n", "4"]
ERASURE = ["--model", "toy:erasure-planted", "--task", "ioi", "--n", "16"]
LOOKUP = ["--model", "toy:lookup", "--layer", "1", "--neuron", "11", "--task", "lookup", "--n", "80", "--top", "80"]
COUNT = ["--model", "toy:count01", "--n", "40"]

# Each analysis on the shipped toy whose family and task it is made for, small enough to be quick.
CASES: dict[str, list[str]] = {
    "dla": ["--model", "toy:ioi", "--prompt", PROMPT, "--answer", " Mary", "--distractor", " John"],
    "logit-lens": ["--model", "toy:ioi", "--prompt", PROMPT, "--answer", " Mary"],
    "attention": ["--model", "toy:ioi", "--prompt", PROMPT],
    "patch": [*IOI, "--site", "resid_pre"],
    "attrib": [*IOI, "--site", "head_out"],
    "eap": [*IOI, "--top", "5"],
    "eap-curve": [*IOI, "--ks", "1,5"],
    "path-patch": [*IOI, "--senders", "L0H0", "--receivers", "logits"],
    "composition": ["--model", "toy:ioi"],
    "head-spectra": ["--model", "toy:ioi"],
    "channels": ["--model", "toy:ioi", "--receiver", "L1H0", "--draws", "2"],
    "inhibition": ["--model", "toy:ioi", "--prompt", PROMPT, "--sender", "L0H0", "--receiver", "L1H0",
                   "--positions", "1"],
    "inhibition-task": ["--model", "toy:ioi", "--n", "4", "--sender", "L0H0", "--receiver", "L1H0"],
    "recall-edit": ["--model", "toy:recall", "--n", "20", "--comps", "2", "--scales", "0"],
    "count-heads": COUNT,
    "count-attention": [*COUNT, "--w01s", "1,2", "--w02s", "0,1"],
    "count-swap": COUNT,
    "count-combine": COUNT,
    "train-toy": ["--model", "toy:count01", "--steps", "3", "--eval-every", "2", "--out"],  # + a fresh folder
    "erasure-pr": ERASURE,
    "erasure-stream": ERASURE,
    "erasure-scatter": ERASURE,
    "erasure-causal": ERASURE,
    "erasure-effect": ERASURE,
    "erasure-prompts": [*ERASURE, "--k", "3", "--prompts", "3"],
    "erasure-verdict": ERASURE,
    "erasure-modified": ERASURE,
    "erasure-input": [*ERASURE, "--n", "4"],
    "erasure-importance": ERASURE,
    "mamba-removal": MAMBA,
    "mamba-greedy": MAMBA,
    "conv-slices": MAMBA,
    "eap-pos": IOI,
    "eap-circuit": IOI,
    "name-arith": ["--model", "toy:ioi-mamba", "--n-avg", "20", "--n", "8"],
    "neuron-congruence": ["--model", "toy:lookup"],
    "neuron-max-acts": LOOKUP,
    "neuron-heads": LOOKUP,
    "neuron-explain": LOOKUP,
    "neuron-ablation": LOOKUP,
    "neuron-heads-prompt": ["--model", "toy:lookup", "--prompt", "Mary went to the school", "--layer", "1",
                            "--neuron", "11"],
    "eval": ["--model", "toy:count01", "--task", "count01", "--n", "40"],
    "generate": ["--model", "toy:ioi", "--prompt", "When Mary and John", "--max-tokens", "4", "--edit", "L0H0:out:0=0"],
    "steering-vector": ["--model", "toy:ioi", "--layer", "1", "--n", "4"],
    "steering-sweep": ["--model", "toy:ioi", "--n", "4", "--scales=-2,0,2", "--layers", "1"],
    "sae-features": ["--model", "toy:ioi", "--prompt", PROMPT],
    "sae-dla": ["--model", "toy:ioi", "--prompt", PROMPT, "--answer", " Mary", "--distractor", " John"],
    "sae-max-acts": ["--model", "toy:ioi", "--feature", "153", "--task", "ioi", "--n", "16", "--top", "3"],
    "sae-corpus": ["--model", "toy:ioi", "--task", "ioi", "--n", "16"],
    "probe": ["--model", "toy:ioi", "--n", "32", "--layers", "1"],
    "positional-subspace": [*IOI[:2], "--n", "20", "--senders", "L0H1,L0H3", "--receiver", "L1H2"],
    "centroid-traversal": [*IOI[:2], "--n", "20", "--senders", "L0H1,L0H3", "--receiver", "L1H2"],
    "centroid-replace": [*IOI[:2], "--n", "20", "--senders", "L0H1,L0H3", "--receiver", "L1H2"],
    "neuron-baseline": ["--model", "toy:lookup", "--task", "lookup", "--n", "40", "--top", "40", "--k", "2"],
    "state-cosine": MAMBA,
}


def _refuse(constant: str) -> None:
    raise ValueError(f"not JSON: {constant}")


def strict_loads(text: str) -> dict:
    """json.loads that refuses NaN, Infinity and -Infinity, as strict JSON readers do."""
    return json.loads(text, parse_constant=_refuse)


def test_the_walk_covers_every_registered_analysis():
    assert set(CASES) == set(analyses()), "give each new analysis a case here"
    assert len(CASES) == 55


@pytest.mark.parametrize("name", sorted(CASES))
def test_every_analysis_prints_its_findings_and_strict_json(name, capsys, tmp_path):
    argv = ["run", name, *CASES[name]]
    if name == "train-toy":
        argv_text, argv_json = [*argv, str(tmp_path / "text")], [*argv, str(tmp_path / "json")]
    else:
        argv_text = argv_json = argv
    assert main(argv_text) == 0, capsys.readouterr().err
    text = capsys.readouterr().out
    found = [line for line in text.splitlines() if line.startswith("found ")]
    assert found, f"{name}: the text does not say what it found:\n{text[:800]}"
    assert "+nan" not in text and "nan " not in text.lower().replace("n/a", "")
    assert main([*argv_json, "--json"]) == 0, capsys.readouterr().err
    document = strict_loads(capsys.readouterr().out)
    headline = document["headline"]
    assert isinstance(document, dict) and headline and all(isinstance(f, str) for f in headline)


def test_numbers_print_by_kind():
    """Counts as whole numbers, p-values in scientific notation, NaN as n/a (never +nan)."""
    assert number(5.6e-89, column_kind("ks_p")) == "5.6e-89"
    assert number(0.004975, column_kind("p_shuffled")) == "0.005"
    assert number(110.0, column_kind("edges kept (pruned)", [110.0, 3.0])) == "110"
    assert number(35, column_kind("n_active", [35])) == "35"
    assert number(0.4375, column_kind("active_rate", [0.4375])) == "+0.4375"
    assert number(float("nan"), column_kind("active_rate")) == "n/a"
    assert column_kind("mean_n", [1.5]) == "value"  # a count-like name holding a mean keeps its decimals


def test_strict_json_writes_nan_and_infinity_as_null():
    text = dumps({"a": float("nan"), "b": [1.0, float("inf")], "c": {"d": -math.inf}})
    assert strict_loads(text) == {"a": None, "b": [1.0, None], "c": {"d": None}}


def test_the_count_analyses_print_text(capsys):
    """Seen: count-heads, count-swap and count-combine without --json crashed (KeyError: 'task')."""
    for name in ("count-heads", "count-swap", "count-combine"):
        assert main(["run", name, "--model", "toy:count01", "--n", "20"]) == 0, capsys.readouterr().err
        assert "model accuracy" in capsys.readouterr().out


def test_ks_p_values_and_counts_read_by_kind(capsys):
    """Seen: KS p = 5.6e-89 printed as +0.0000, counts as +35.0000, the pooled row's rate as +nan."""
    assert main(["run", "neuron-ablation", *LOOKUP]) == 0
    out = capsys.readouterr().out
    row = next(line.split() for line in out.splitlines() if line.startswith("all "))
    assert "e-" in row[2] and row[7:10] == ["35", "45", "n/a"]


def test_hidden_rows_hint_names_an_option_the_analysis_takes(capsys):
    """Seen: EAP's hint said --top 0, which eap refuses (its --top keeps edges for a circuit)."""
    assert main(["run", "eap", *IOI]) == 0
    out = capsys.readouterr().out
    assert "more rows" in out and "--top 0" not in out and "--json for all" in out
