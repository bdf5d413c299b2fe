"""The TUI's SAE parts: a feature edit in the list of edits in force (applied to every run,
recorded, undone), and the token x feature grid from the Prompt tab's generated form."""

from __future__ import annotations

from pilot import choose, ready, wait_for

from analyses.results import Grid
from analyses.sae.features import SHIPPED_SAES
from workbench.app import WorkbenchApp


async def test_a_feature_edit_applies_to_every_run_and_the_feature_grid_opens():
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        plain = app.ws.runs[-1].result
        edit = f"sae:{SHIPPED_SAES / 'ioi'}:153=0"
        app.add_edit(edit)
        await pilot.pause()
        assert app.edits == (edit,) and "edits: sae:" in str(app.query_one("#model_status").render())
        app.action_show_tab("prompt")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        edited = app.ws.runs[-1].result
        assert edited.meta["edits"] == [edit] and edited.meta["logit"] < plain.meta["logit"] - 1
        app.action_undo_edit()
        choose(app, "prompt", "sae-features")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 3)
        grid = app.ws.runs[-1].result
        assert isinstance(grid, Grid) and grid.axes == ["pos", "feature"] and "edits" not in grid.meta
