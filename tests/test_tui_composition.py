"""The TUI's Talking-heads parts: composition heatmaps and spectra from the generated forms, and
the list of edits in force (palette "Edit: add" / "Undo edit") that every run applies and records."""

from __future__ import annotations

import torch
from pilot import choose, ready, wait_for

from textual.widgets import Select

from analyses.results import Grid, Series
from screens.widgets import ErrorDialog
from workbench.app import WorkbenchApp


async def test_composition_heatmap_and_spectra_from_the_model_tab():
    app = WorkbenchApp("toy:recall", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        choose(app, "model", "composition", mode="V")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        grid = app.ws.runs[-1].result
        assert isinstance(grid, Grid) and grid.meta["mode"] == "V" and app.ws.runs[-1].params["fold"] == "tl"
        assert len(grid.values) == 8 and grid.values[4] == [0.0] * 8  # layer-1 senders have no later receiver
        await wait_for(pilot, lambda: app._pane("model").view.heatmap.row_count == 8)  # sender x receiver map
        assert app._pane("model").view.current_view == "map"
        choose(app, "model", "head-spectra", circuit="qk", show="L1H0,L1H3")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 3)
        series = app.ws.runs[-1].result
        assert isinstance(series, Series) and list(series.lines) == ["L1H0", "L1H3"]


async def test_one_parameter_name_takes_each_analysis_choices_and_defaults():
    """`mode` is Q|K|V for composition and replace|subtract-add for name arithmetic; `n` is 400
    Count01 strings for count-heads and 50 prompts for the inhibition score: the shared control
    follows the analysis chosen, each analysis with its own value (and the model's own task)."""
    app = WorkbenchApp("toy:recall", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        form = app._pane("model").form
        choose(app, "model", "composition", mode="V")
        await pilot.pause()
        choose(app, "model", "channels")
        await pilot.pause()
        assert form.values()["mode"] == "Q"  # channels' own default: nothing leaks from composition
        choose(app, "model", "composition")
        await pilot.pause()
        assert form.values()["mode"] == "V"  # composition's value, as it was left
        choose(app, "model", "count-heads")
        await pilot.pause()
        assert form.values()["n"] == "400"
        choose(app, "model", "inhibition-task")
        await pilot.pause()
        assert form.values()["n"] == "50" and form.values()["task"] == "recall"  # the model's own task
        assert app.query_one("#model-n").tooltip == "prompts (held-out split)"
    app = WorkbenchApp("toy:ioi-mamba", device="cpu")  # name arithmetic is Mamba's
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        choose(app, "model", "name-arith")
        await pilot.pause()
        form = app._pane("model").form
        assert form.options["mode"] == ["replace", "subtract-add"]
        assert app.query_one("#model-mode", Select).value in ("replace", "subtract-add")


async def test_edits_in_force_apply_to_every_run_are_recorded_and_undo():
    app = WorkbenchApp("toy:recall", device="cpu")
    async with app.run_test(size=(110, 34)) as pilot:
        await ready(pilot, app)
        weights = {k: v.clone() for k, v in app.loaded.hooked.model.state_dict().items()}
        plain = app.ws.runs[-1].result
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Edit: add" in titles and "Undo edit" not in titles
        app.add_edit("L9H0:ov:0=0")  # no such layer: refused with a dialog, nothing added
        await pilot.pause()
        assert isinstance(app.screen, ErrorDialog) and app.edits == ()
        await pilot.press("escape")
        app.add_edit("l1h2:ov:0,1=0")
        app.add_edit("L0H1:out:0+=2@-1")
        await pilot.pause()
        assert app.edits == ("L1H2:ov:0,1=0", "L0H1:out:0+=2@-1")
        assert "edits: L1H2:ov:0,1=0 L0H1:out:0+=2@-1" in str(app.query_one("#model_status").render())
        assert "Undo edit" in [c.title for c in app.get_system_commands(app.screen)]
        app.action_show_tab("prompt")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        edited = app.ws.runs[-1].result
        assert edited.meta["edits"] == ["L1H2:ov:0,1=0", "L0H1:out:0+=2@-1"]
        assert edited.meta["logit"] != plain.meta["logit"]
        after = app.loaded.hooked.model.state_dict()
        assert all(torch.equal(weights[k], after[k]) for k in weights)  # each run undoes its weight edits
        app.action_undo_edit()
        app.action_undo_edit()
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 3)
        again = app.ws.runs[-1].result
        assert "edits" not in again.meta and again.to_json() == plain.to_json()
        assert "edits" not in str(app.query_one("#model_status").render())


async def test_the_edit_dialog_shows_every_syntax_it_takes_at_80_columns():
    """Defect: the dialog's question was one line cut at the box's edge ("... or LxHy:o"), so the
    additive head edit and the SAE feature edit it also takes were never shown."""
    from textual.widgets import Label

    app = WorkbenchApp("toy:recall", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        app.action_add_edit()
        await pilot.pause()
        question = app.screen.query(Label).first()
        shown = " ".join(line.text for line in question.render_lines(question.region.reset_offset))
        shown = " ".join(shown.split())
        for part in ("LxHy:ov:I=SCALE", "LxHy:out:I+=DISTANCE[@POS]", "sae:FOLDER:F=VALUE[@POS]", "VALUE 0 ablates"):
            assert part in shown, shown
