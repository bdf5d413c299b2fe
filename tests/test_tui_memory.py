"""The TUI asks before a run whose estimated memory exceeds what the device has free."""

from __future__ import annotations

from pilot import choose, ready, wait_for

from analyses.results import Grid
from screens.dialogs import ConfirmDialog
from workbench.app import WorkbenchApp


async def test_a_run_larger_than_memory_asks_first_and_escape_runs_nothing():
    """Defect: n = 3,000,000 started at once, showed `--%` and grew past 4 GB."""
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="100000000", site="head_out")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "GB of memory" in app.screen.question and "fewer pairs (\"n\")" in app.screen.question
        await pilot.press("escape")
        await pilot.pause()
        assert app._active_job is None and [e.analysis for e in app.ws.runs] == ["dla"]


async def test_confirming_the_memory_dialog_runs_anyway(monkeypatch):
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        monkeypatch.setenv("WORKBENCH_MEMORY_MB", "1")  # 1 MB to spare from now on: every run is too large
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="4", site="resid_pre")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ConfirmDialog))
        assert "MB of memory" in app.screen.question and "1 MB of RAM available" in app.screen.question
        await pilot.press("y")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        assert isinstance(app.ws.runs[-1].result, Grid) and app.ws.runs[-1].params["n"] == 4
