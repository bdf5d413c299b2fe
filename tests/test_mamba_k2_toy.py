"""toy:ioi-mamba-k2 (paper 4, docs/mamba-k2.md): a Mamba trained with conv kernel 2 carries the
names linearly in layer 1's SSM input, so subtract-and-add of average name vectors flips the answer
(Ensign & Garriga-Alonso 2024, Fig 8: > 95 % on Mamba-370m). Measured on the shipped checkpoint
through the CLI, the name-arith analysis at its defaults except the offset: the names sit at their
own position in this toy (offset 0), not one position on as in the paper (offset 1, flips 0.00)."""

from __future__ import annotations

import json

from workbench.cli import main


def _arith(capsys, *extra: str) -> dict:
    assert main(["run", "name-arith", "--model", "toy:ioi-mamba-k2", "--device", "cpu", "--json", *extra]) == 0
    return json.loads(capsys.readouterr().out)


def test_subtract_and_add_at_the_names_own_position_flips_nearly_every_answer(capsys):
    data = _arith(capsys, "--offset", "0")
    assert data["layer"] == 1 and data["mode"] == "subtract-add" and data["n_avg"] == 2000
    assert data["mean_flip_rate"] >= 0.9
    assert min(min(row) for row in data["grid"]) >= 0.9  # every slot pair, not only on average


def test_the_toy_is_listed_with_its_paper(capsys):
    assert main(["models"]) == 0
    line = next(x for x in capsys.readouterr().out.splitlines() if "ioi-mamba-k2" in x)
    assert "Garriga-Alonso" in line
