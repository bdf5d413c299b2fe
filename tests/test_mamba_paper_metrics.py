"""The Mamba IOI paper's own quantities (Ensign & Garriga-Alonso 2024): layer removal's P(correct)
among the candidate names (Fig 4), the five corruption patterns (section 4.2) and the state cosine
(Fig 6). Hand-computed values and invariants; docs/mamba.md defines each."""

from __future__ import annotations

import json
import math

import torch

from analyses.mamba.task import p_correct
from workbench.cli import main


def test_p_correct_is_the_softmax_over_the_candidates_without_padding():
    # row 0: candidates answer 5, 7, 9 with logits 2, 1, 0; row 1: answer 4, 8 padded with a copy of 4
    cands = torch.tensor([[5, 7, 9], [4, 8, 4]])
    picked = torch.tensor([[2.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    row0 = math.exp(2) / (math.exp(2) + math.exp(1) + 1)
    assert abs(p_correct(picked, cands) - (row0 + 0.5) / 2) < 1e-6  # the padding copy is not a third name


def test_layer_removal_reports_p_correct_beside_accuracy(capsys):
    assert main(["run", "mamba-removal", "--model", "toy:ioi-mamba", "--device", "cpu", "--json"]) == 0
    rows = {r["label"]: r for r in json.loads(capsys.readouterr().out)["rows"]}
    assert rows["none"]["p_correct"] > 0.99 and rows["none"]["accuracy"] == 1.0
    for label in ("L0", "L1"):
        assert 0.0 <= rows[label]["p_correct"] < 0.6
    assert main(["run", "mamba-removal", "--model", "toy:ioi-mamba", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "p_correct" in out and "P(correct) among the names" in out


def _names(prompt: str) -> tuple[list[str], list[str]]:
    """The first clause's three names and the second clause's two, of a three-name ABC prompt."""
    words = prompt.replace(",", " ").replace(".", " ").split()
    first = [w for w in words[: words.index("went") if "went" in words else words.index("arrived")] if w[0].isupper()]
    return first[-3:], [words[-7], words[-5]]  # "... X and Y gave a O to"


def test_each_corruption_pattern_follows_its_letters():
    from analyses.tasks import task_pairs
    from analyses.tasks.ioi_patterns import PATTERNS

    for name, (clean, corrupt) in PATTERNS.items():
        for pair in task_pairs(name, 8, seed=3):
            letters: dict[str, str] = {}
            for prompt, answer, (first, second, ans) in ((pair.clean, pair.answer, clean),
                                                         (pair.corrupt, pair.distractor, corrupt)):
                got_first, got_second = _names(prompt)
                for letter, word in zip(first + second + ans, got_first + got_second + [answer.strip()]):
                    assert letters.setdefault(letter, word) == word, (name, prompt)
            assert len(set(letters.values())) == len(letters)  # distinct letters are distinct names


def test_each_corruption_pattern_runs_through_eval_patching_and_eap(capsys):
    from analyses.tasks.ioi_patterns import PATTERNS

    model = ["--model", "toy:ioi-mamba", "--device", "cpu", "--json"]
    for name in PATTERNS:
        assert main(["run", "eval", *model, "--task", name, "--n", "8"]) == 0
        assert json.loads(capsys.readouterr().out)["rows"][0]["accuracy"] > 0.5
        assert main(["run", "patch", *model, "--task", name, "--n", "4", "--metric", "nld"]) == 0
        assert json.loads(capsys.readouterr().out)["data"] == f"task {name}"
        assert main(["run", "eap", *model, "--task", name, "--n", "4"]) == 0
        assert json.loads(capsys.readouterr().out)["data"] == f"task {name}"
    assert main(["run", "patch", *model, "--task", "ioi-abc-p6"]) == 2


def test_state_cosine_matrix_by_hand():
    from analyses.mamba.state import input_terms, state_cosine_matrix

    delta = torch.tensor([[[2.0], [1.0]]])  # [b 1, s 2, d_inner 1]
    x = torch.tensor([[[1.0], [3.0]]])
    B = torch.tensor([[[1.0, 0.0], [1.0, 1.0]]])  # [b, s, d_state 2]
    terms = input_terms(delta, x, B)  # Δ x ⊗ B: position 0 -> (2, 0), position 1 -> (3, 3)
    assert terms.flatten(2).tolist() == [[[2.0, 0.0], [3.0, 3.0]]]
    states = torch.tensor([[[[1.0, 0.0]], [[0.0, 0.0]]]])  # h_0 = (1, 0), h_1 = 0 (no norm: cosine 0)
    cos = state_cosine_matrix(terms, states)[0]
    assert torch.allclose(cos, torch.tensor([[1.0, 0.0], [1 / math.sqrt(2), 0.0]]))


def test_state_cosine_on_a_tiny_mamba_starts_at_one(loaded):
    """h_0 is B̄_0 x_0 exactly (the state starts at zero), so cell (0, 0) is 1 in every layer, and
    every cosine lies in [-1, 1]."""
    from analyses.mamba.state import state_cosine

    lm = loaded("mamba")
    tokens = torch.tensor([[5, 9, 13, 7, 2], [4, 8, 12, 6, 3]])
    grid = state_cosine(lm.hooked, tokens, None, list("abcde"))
    values = torch.tensor(grid.values)
    assert values.shape == (lm.hooked.shape.n_layers, 5, 5)
    assert torch.allclose(values[:, 0, 0], torch.ones(values.shape[0]), atol=1e-5)
    assert values.abs().max() <= 1 + 1e-5


def test_state_cosine_through_the_cli(capsys):
    assert main(["run", "state-cosine", "--model", "toy:ioi-mamba-k2", "--device", "cpu", "--n", "4", "--json"]) == 0
    data = json.loads(capsys.readouterr().out)
    assert data["axes"] == ["layer", "input pos", "state pos"] and len(data["grid"]) == 2
    assert main(["run", "state-cosine", "--model", "toy:ioi", "--n", "4"]) == 2  # not a Mamba
