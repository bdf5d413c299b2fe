"""The TUI on the analysis registry: forms generated from declarations, datasets, a queue of runs,
cancellation that keeps partial grids, reopened runs under matching controls."""

from __future__ import annotations

import pytest

from pilot import choose, ready, started, status, wait_for

from textual.widgets import DataTable, Input, Select

from analyses.results import Grid, Series
from screens.widgets import ErrorDialog
from sessions.workspace import Workspace
from workbench.app import WorkbenchApp


async def test_a_task_sample_runs_resample_ablation_and_the_eap_curve():
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(100, 32)) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="16", site="resid_pre", direction="resample")
        await pilot.pause()
        assert not app.query_one("#pairs-clean-field").display and app.query_one("#pairs-task-field").display
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        grid = app.ws.runs[-1].result
        assert isinstance(grid, Grid) and grid.meta["n_pairs"] == 16 and grid.meta["method"] == "resample"
        assert app.ws.runs[-1].params["task"] == "ioi" and app.ws.runs[-1].params["clean"] is None
        choose(app, "pairs", "eap-curve", ks="1,10,50")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 3, steps=1200)
        curve = app.ws.runs[-1].result
        assert isinstance(curve, Series) and curve.x == [1, 10, 50]
        assert app._pane("pairs").view.table.row_count == 3 and "faithfulness" in status(app)


async def test_a_run_started_during_a_sweep_waits_its_turn():
    """Defect: starting any run while a patching sweep ran silently cancelled the sweep."""
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(100, 32)) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="32", site="head_out", direction="resample")
        await pilot.press("ctrl+r")
        app.action_show_tab("prompt")
        await pilot.pause()
        await pilot.press("ctrl+r")  # a DLA run while the sweep runs
        await wait_for(pilot, lambda: len(app.ws.runs) == 3, steps=1200)
        assert [e.analysis for e in app.ws.runs] == ["dla", "patch", "dla"]
        assert app.ws.runs[1].result.meta["partial"] is False  # the sweep ran to its end


async def test_escape_cancels_between_batches_and_keeps_the_partial_grid():
    """Defect: cancelling took a whole sweep and threw the cells done away."""
    from workbench.running import RunProgress

    messages = []
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(100, 32), message_hook=messages.append) as pilot:
        await ready(pilot, app)
        choose(app, "pairs", "patch", source="task sample", task="ioi", n="64", site="head_out", direction="resample")
        app.action_run()
        # once the sweep has begun (a cancel while the pairs are drawn keeps nothing: there is nothing yet)
        await wait_for(pilot, lambda: any(isinstance(m, RunProgress) and m.what is None for m in messages), steps=1200)
        app.action_cancel()  # what Escape does
        assert "cancelling" in status(app)
        await wait_for(pilot, lambda: len(app.ws.runs) == 2, steps=1200)
        grid = app.ws.runs[-1].result
        assert grid.meta["partial"] is True and grid.meta["cells_done"] < grid.meta["cells_total"]
        assert "PARTIAL" in status(app)


async def test_a_reopened_run_restores_its_controls_and_edits_mark_it_stale(checkpoints):
    """Defect: a reopened run was shown under controls that did not match it, with no stale marker."""
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        choose(app, "prompt", "dla", by="head", pos="3")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 2)
        choose(app, "prompt", "logit-lens", pos="-1")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: len(app.ws.runs) == 3)
        history = app.query_one("#history", DataTable)
        row = [str(c) for c in history.get_row_at(1)]
        assert row[1] == "dla" and "by=head" in row[2] and "pos=3" in row[2] and "logit" in row[3]
        app.action_show_tab("history_tab")
        history.move_cursor(row=1)
        await pilot.press("ctrl+r")  # reopen
        await pilot.pause()
        form = app._pane("prompt").form
        assert form.analysis.name == "dla" and app.query_one("#prompt-by", Select).value == "head"
        assert app.query_one("#prompt-pos", Input).value == "3"
        assert not app._pane("prompt").view.has_class("stale")
        app.query_one("#prompt-pos", Input).value = "2"
        await pilot.pause()
        assert app._pane("prompt").view.has_class("stale")
        app.query_one("#prompt-pos", Input).value = "3"
        await pilot.pause()
        assert not app._pane("prompt").view.has_class("stale")


async def test_an_attention_pattern_of_one_head(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        choose(app, "prompt", "attention", layer="1", head="2")
        await pilot.pause()
        assert not app.query_one("#prompt-answer-field").display  # attention reads no answer
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "attention")
        grid = app.ws.runs[-1].result
        n = len(grid.labels["query"])
        assert grid.axes == ["query", "key"] and app._pane("prompt").view.heatmap.row_count == n
        assert all(abs(sum(row) - 1) < 1e-5 for row in grid.values)


async def test_opening_a_damaged_session_is_a_dialog_and_the_open_ones_stay(tmp_path, capsys):
    """Defect: random bytes inside a session file killed the app, losing the unsaved session."""
    from workbench.cli import main

    path = tmp_path / "s.wbs"
    assert main(["run", "dla", "--model", "toy:ioi", "--prompt", "When Mary and John went to the store , John gave a "
                 "drink to", "--answer", " Mary", "--session", str(path)]) == 0
    data = bytearray(path.read_bytes())
    data[len(data) // 4 : len(data) // 4 + 2000] = bytes(range(256)) * 7 + bytes(208)
    path.write_bytes(bytes(data))
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(100, 32)) as pilot:
        await ready(pilot, app)
        app._open((str(path), ""))
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "s.wbs" in app.screen.message
        await pilot.press("escape")
        assert len(app.workspaces) == 1 and len(app.ws.runs) == 1  # the unsaved session is still there


async def test_the_forms_open_on_the_models_own_task():
    app = WorkbenchApp("toy:count01", device="cpu")
    async with app.run_test(size=(100, 32)) as pilot:
        await ready(pilot, app)
        assert app.query_one("#prompt-prompt", Input).value.endswith("=")
        assert app.query_one("#prompt-answer", Input).value in (" yes", " no")
        assert app.ws.runs[0].result.meta["logit"] is not None
        app._evaluate("ioi")  # not the model's task: a warning, and the run goes ahead
        await pilot.pause()
        assert any("not toy:count01's own task" in n.message for n in app._notifications)


@pytest.mark.parametrize("spec, model_tab", [("toy:count01", "count-heads"), ("toy:recall", "recall-edit"),
                                             ("toy:ioi", "composition"), ("toy:ioi-mamba", "name-arith")])
async def test_the_model_tab_opens_on_an_analysis_made_for_the_models_task(spec, model_tab):
    """A toy's Model tab opens on the analysis made for its task; any other model on composition
    scores (weights only, no inputs to fill in); the other tabs on DLA and patching."""
    app = WorkbenchApp(spec, device="cpu")
    async with app.run_test(size=(100, 32)) as pilot:
        await ready(pilot, app)
        assert app._pane("model").form.analysis.name == model_tab
        assert app._pane("prompt").form.analysis.name == "dla" and app._pane("pairs").form.analysis.name == "patch"


async def test_a_session_reopens_on_its_last_prompt(tmp_path):
    from sessions.store import Session

    path = tmp_path / "s.wbs"
    with Session.create(path, {"spec": "toy:recall", "revision": None}) as s:
        s.add_prompt("list : shoe cake . after shoe comes", None, " cake", None)
    app = WorkbenchApp("toy:recall", device="cpu", workspaces=[Workspace.from_file(path)])
    async with app.run_test(size=(100, 32)) as pilot:
        await started(pilot, app)
        assert app.query_one("#prompt-prompt", Input).value == "list : shoe cake . after shoe comes"


async def test_the_model_tab_measures_count01_heads():
    app = WorkbenchApp("toy:count01", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        choose(app, "model", "count-heads", n="100")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "count-heads", steps=1200)
        assert app._pane("model").view.table.row_count == 5  # four heads and the model
        choose(app, "model", "count-attention", n="100", w01s="0.5,1", w02s="0,1")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "count-attention", steps=1200)
        grid = app.ws.runs[-1].result
        assert grid.axes == ["w01", "w02"] and app._pane("model").view.heatmap.row_count == 2
        assert grid.meta["base_accuracy"] > 0.9 and all(0 <= v <= 1 for row in grid.values for v in row)


async def test_training_a_toy_from_the_model_tab_records_its_curve(tmp_path):
    app = WorkbenchApp("toy:count01", device="cpu")
    out = tmp_path / "c01-h2"
    async with app.run_test(size=(100, 32)) as pilot:
        await ready(pilot, app)
        choose(app, "model", "train-toy", n_heads="2", train_seed="1", steps="40", out=str(out), eval_every="20")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "train-toy", steps=2400)
        curve = app.ws.runs[-1].result
        assert curve.x == [20, 40] and {"loss", "accuracy"} <= set(curve.lines)
        assert curve.meta["path"] == str(out) and curve.meta["steps_done"] == 40 and not curve.meta["cancelled"]
        assert app.ws.runs[-1].params["n_heads"] == 2 and (out / "config.json").is_file()
