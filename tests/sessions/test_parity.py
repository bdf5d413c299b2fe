"""The parity check made on every load: the hooked run's logits against the plain HF forward's, in
the model's facts (status bar, CLI output, every run's record), a warning when it fails."""

from __future__ import annotations

import json

import pytest
import torch
from conftest import VARIANTS

from analyses.models import Intervention
from analyses.parity import TOLERANCE, check_parity, parity_text, parity_warning
from sessions.store import Session
from workbench.cli import main


@pytest.mark.parametrize("name", list(VARIANTS))
def test_every_family_passes_the_check_at_load(loaded, name):
    parity = loaded(name).info["parity"]
    assert parity["ok"] and parity["relative"] <= TOLERANCE["float32"] and parity["tokens"] >= 2
    assert parity_text(parity) == "parity ok"


def test_a_hooked_model_that_computes_something_else_fails_the_check(loaded):
    lm = loaded("llama-gqa")
    lm.hooked.standing = (Intervention("blocks.1.hook_resid_pre", "add", value=torch.tensor(0.01)),)
    try:
        parity = check_parity(lm.hooked, lm.tokenizer, "float32")
    finally:
        lm.hooked.standing = ()
    assert not parity["ok"] and parity["relative"] > TOLERANCE["float32"]
    assert parity_text(parity).startswith("PARITY ") and "> 1e-05" in parity_text(parity)
    warning = parity_warning({**lm.info, "parity": parity})
    assert "differ from the plain Hugging Face forward" in warning and "each run's record carries" in warning
    assert parity_warning(lm.info) is None  # the model as loaded passes


def test_bfloat16_is_held_to_its_own_tolerance(checkpoints):
    from sessions.loading import load

    parity = load(str(checkpoints["gpt2"]), device="cpu", dtype="bfloat16").info["parity"]
    assert parity["tolerance"] == TOLERANCE["bfloat16"] and parity["ok"]


def test_the_cli_prints_the_check_and_every_saved_run_carries_it(capsys, tmp_path, monkeypatch):
    session = str(tmp_path / "s.wbs")
    args = ["run", "dla", "--model", "toy:ioi", "--device", "cpu", "--prompt",
            "When Mary and John went to the store , John gave a drink to", "--answer", "Mary", "--session", session]
    assert main([*args, "--json"]) == 0
    out, err = capsys.readouterr()
    model = json.loads(out)["model"]
    assert model["parity"]["ok"] and {"spec", "revision", "dtype", "device"} <= set(model) and err == ""
    monkeypatch.setitem(TOLERANCE, "float32", -1.0)  # no forward passes this: the check fails
    assert main(args) == 0
    out, err = capsys.readouterr()
    assert "model   toy:ioi (gpt2, float32, cpu, PARITY " in out and "workbench: warning: toy:ioi" in err
    with Session.open(session) as s:
        first, second = s.runs()
    assert first.model["parity"]["ok"] and first.model["revision"] == model["revision"]
    assert first.model["dtype"] == "float32" and first.model["device"] == "cpu"
    assert second.model["parity"]["ok"] is False


async def test_the_tui_shows_the_check_and_warns_when_it_fails(tmp_path, monkeypatch):
    from pilot import ready, wait_for

    from screens.widgets import ErrorDialog
    from sessions.workspace import Workspace
    from workbench.app import WorkbenchApp

    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        assert "float32 · parity ok · RSS" in str(app.query_one("#model_status").render())
        assert app.ws.runs[0].model["parity"]["ok"]
    monkeypatch.setitem(TOLERANCE, "float32", -1.0)
    path = tmp_path / "s.wbs"
    app = WorkbenchApp("toy:ioi", device="cpu", workspaces=[Workspace("toy:ioi", new_path=path)])
    async with app.run_test(size=(120, 40)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert app.screen.heading.startswith("Warning") and "differ from the plain" in app.screen.message
        assert "PARITY" in str(app.query_one("#model_status").render())
        await pilot.press("escape")
        await ready(pilot, app)  # the model stays usable: the first run still happens, carrying the check
    with Session.open(path) as s:
        assert s.runs()[0].model["parity"]["ok"] is False and s.model["parity"]["ok"] is False
