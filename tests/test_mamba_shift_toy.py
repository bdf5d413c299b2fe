"""toy:ioi-mamba-shift (paper 4, docs/mamba-shift.md): a Mamba with conv kernel 2 trained on
ioi-marked, where a name followed by "left" does not count, carries each name linearly one
position on, in layer 1's SSM input at name + 1: there subtract-and-add of average name vectors
flips the answer (Ensign & Garriga-Alonso 2024, Fig 8: > 95 % on Mamba-370m, at name + 1 because
the conv shifts each name forward). Measured on the shipped checkpoint through the CLI, name-arith
at every default (its task: the toy's own, ioi-marked; offset 1)."""

from __future__ import annotations

import json

from workbench.cli import main


def _arith(capsys, *extra: str) -> dict:
    assert main(["run", "name-arith", "--model", "toy:ioi-mamba-shift", "--device", "cpu", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_subtract_and_add_one_position_after_the_name_flips_nearly_every_answer(capsys):
    data = _arith(capsys)
    assert (data["layer"], data["mode"], data["offset"], data["task"]) == (1, "subtract-add", 1, "ioi-marked")
    assert data["n_avg"] == 2000 and data["n_test"] == 200
    assert data["mean_flip_rate"] >= 0.9
    assert min(min(row) for row in data["grid"]) >= 0.8  # every slot pair, not only on average


def test_the_toy_is_listed_with_its_paper(capsys):
    assert main(["models"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "ioi-mamba-shift" in x)
    assert "Garriga-Alonso" in line
