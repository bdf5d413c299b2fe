"""docs/erasure-toy.md's walk through toy:erasure-repeat, key by key, in the real app: F7, the
palette reaches the eraser verdict with the toy's own task and writer already set, ctrl+r runs it,
and the set's verdict is erasure."""

from __future__ import annotations

from pilot import ready, wait_for
from workbench.app import WorkbenchApp


async def test_the_docs_walk_through_finds_erasure_as_a_set():
    from textual.command import CommandPalette

    app = WorkbenchApp("toy:erasure-repeat", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await pilot.press("f7")
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"eraser verdict")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: app._pane("model").form.analysis.name == "erasure-verdict")
        assert app.query_one("#model-task").value == "repeat"
        assert app.query_one("#model-writer").value == "L0H2"  # the toy's own writer
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs and app.ws.runs[-1].analysis == "erasure-verdict", steps=2400)
        meta = app.ws.runs[-1].result.meta
        assert meta["set_verdict"] == "erasure" and meta["set_r"] <= -0.8, meta
        assert meta["stream_before"] <= 0.6 and meta["restored"] >= 0.6, meta
