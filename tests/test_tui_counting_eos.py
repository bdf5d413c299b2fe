"""docs/counting.md's walk through toy:count01-eos, key by key, in the real app: F7 opens the Model
tab on count-heads for the model's own task, ctrl+r runs it, the palette reaches the head weights,
and the uniform row's EOS-decision accuracy falls."""

from __future__ import annotations

from pilot import ready, wait_for
from workbench.app import WorkbenchApp


async def test_the_docs_walk_through_uniform_weighting_breaking_eos():
    from textual.command import CommandPalette

    app = WorkbenchApp("toy:count01-eos", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await pilot.press("f7")
        form = app._pane("model").form
        assert form.analysis.name == "count-heads" and app.query_one("#model-task").value == "count01-eos"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "count-heads", steps=2400)
        heads = app.ws.runs[-1].result
        assert heads.meta["readout"] == "eos" and "s_acc_one_dir" in heads.columns
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"head weights")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app._pane("model").form.analysis.name == "count-combine")
        assert app.query_one("#model-task").value == "count01-eos"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "count-combine", steps=2400)
        eos = dict(zip(app.ws.runs[-1].result.labels, app.ws.runs[-1].result.columns["eos_acc"]))
        assert eos["model"] - eos["uniform"] >= 0.05, eos
