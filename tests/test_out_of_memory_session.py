"""Out of memory inside an analysis keeps the session: the TUI shows a dialog naming the run and how
to shrink it, the CLI exits 2 with that message; the model stays loaded, the saved runs stay, and
the next run works. The failure is injected through a real hook of the real toy model (a standing
intervention that raises in the sweep's forwards)."""

from __future__ import annotations

import json

import pytest
import torch
from pilot import choose, ready, wait_for

from analyses.models import Intervention
from screens.widgets import ErrorDialog
from sessions.store import Session
from workbench.app import WorkbenchApp
from workbench.cli import main

ERRORS = [torch.cuda.OutOfMemoryError, MemoryError]


def _refuse(error: type[BaseException]) -> Intervention:
    """Raise ``error`` in every forward after the first two (the sweep's clean and corrupted
    baselines): mid-sweep, and again when the sweep retries with half the rows."""
    calls = []

    def fn(act: torch.Tensor) -> torch.Tensor:
        calls.append(act.shape[0])
        if len(calls) > 2:
            raise error("injected: the batch does not fit")
        return act

    return Intervention("ln_final.hook_scale", "fn", fn=fn)


@pytest.mark.parametrize("error", ERRORS)
async def test_out_of_memory_mid_sweep_is_a_dialog_and_the_session_goes_on(tmp_path, error):
    path = tmp_path / "s.wbs"
    app = WorkbenchApp("toy:ioi", device="cpu", workspaces=[_new_session(path)])
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)  # the first DLA run, saved
        loaded = app.loaded
        loaded.hooked.standing = (_refuse(error),)
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="4", site="resid_pre")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        text = app.screen.message
        assert text.startswith("patch (site=resid_pre") and "out of memory" in text and "task=ioi n=4" in text
        assert "fewer pairs" in text and "model stays loaded" in text
        await pilot.press("escape")
        assert app.loaded is loaded and [e.analysis for e in app.ws.runs] == ["dla"]  # nothing lost, nothing added
        loaded.hooked.standing = ()  # memory to spare again: the next run works
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        assert app.loaded is loaded and app.ws.runs[-1].analysis == "patch"
    with Session.open(path) as session:
        assert [r.analysis for r in session.runs()] == ["dla", "patch"]


def _new_session(path):
    from sessions.workspace import Workspace

    return Workspace("toy:ioi", new_path=path)


@pytest.mark.parametrize("error", ERRORS)
def test_out_of_memory_in_a_cli_run_exits_2_naming_the_run_and_keeps_the_session(capsys, tmp_path, monkeypatch,
                                                                                 error):
    import sessions.loading

    session = str(tmp_path / "s.wbs")
    args = ["run", "patch", "--model", "toy:ioi", "--device", "cpu", "--task", "ioi", "--n", "4",
            "--site", "resid_pre", "--session", session, "--json"]
    assert main(["run", "dla", "--model", "toy:ioi", "--device", "cpu", "--prompt",
                 "When Mary and John went to the store , John gave a drink to", "--answer", "Mary",
                 "--session", session]) == 0
    real_load = sessions.loading.load

    def load_short_of_memory(*a, **kw):  # the real model, with a hook that refuses the sweep's batches
        lm = real_load(*a, **kw)
        lm.hooked.standing = (_refuse(error),)
        return lm

    monkeypatch.setattr(sessions.loading, "load", load_short_of_memory)
    capsys.readouterr()
    assert main(args) == 2
    out, err = capsys.readouterr()
    assert out == "" and err.startswith("workbench: error: patch (site=resid_pre") and "out of memory" in err
    assert "fewer pairs" in err and "Traceback" not in err
    monkeypatch.setattr(sessions.loading, "load", real_load)
    assert main(args) == 0
    assert json.loads(capsys.readouterr().out)["site"] == "resid_pre"
    with Session.open(session) as s:
        assert [r.analysis for r in s.runs()] == ["dla", "patch"]
