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


async def test_the_model_tab_opens_on_name_arithmetic_over_the_toys_own_task():
    """docs/mamba-shift.md's walk: F7 shows name-arith with the toy's task, focus on it, mode one tab on."""
    from pilot import wait_for
    from textual.widgets import Select

    from workbench.app import WorkbenchApp

    app = WorkbenchApp("toy:ioi-mamba-shift", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: app.loaded is not None and app.ws.runs, steps=1200)  # its first run ended
        await wait_for(pilot, lambda: app._active_job is None, steps=1200)
        await pilot.press("f7")
        await pilot.pause()
        assert app.query_one("#model-analysis", Select).value == "name-arith"
        assert app.query_one("#model-task", Select).value == "ioi-marked"
        assert app.focused.id == "model-task"
        await pilot.press("tab")
        assert app.focused.id == "model-mode"
