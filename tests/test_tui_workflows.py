"""Analysts' workflows in the TUI, driven through Textual's Pilot: several sessions, saving an
unsaved one, the prompt library, every patching method, the token picker, plots, the command
palette and the loading indicator."""

from __future__ import annotations

import dataclasses

import pytest
from conftest import PROMPT
from pilot import ready, status, wait_for
from textual.widgets import DataTable, Input, OptionList, ProgressBar, Select, TabbedContent

from screens.dialogs import AskDialog, OpenSessionDialog, TokenPicker
from screens.plots import ResultPlot, pearson, plot_kinds
from screens.widgets import ErrorDialog
from sessions.store import Session
from sessions.workspace import Workspace
from workbench.app import WorkbenchApp

PROMPT_CORRUPT = PROMPT.replace("John gave", "Mary gave")


def _history(app) -> int:
    return app.query_one("#history", DataTable).row_count


def _shows(app, control: str) -> bool:
    """Whether the form shows the field of this control (the chosen analysis reads it)."""
    return app.query_one(f"#{control}-field").display


def _cells(row) -> list[str]:
    return [str(cell) for cell in row]  # cells are rich Text


async def _choose(pilot, app, tab: str, analysis: str) -> None:
    """Show ``tab`` and pick ``analysis`` in its chooser, as a person would, until its form is up."""
    app.query_one(TabbedContent).active = tab
    app.query_one(f"#{tab}-analysis", Select).value = analysis
    await wait_for(pilot, lambda: app._pane(tab).form.analysis.name == analysis)


async def _open_patching(pilot, app, analysis: str) -> None:
    await _choose(pilot, app, "pairs", analysis)
    app.query_one("#pairs-corrupt", Input).value = PROMPT_CORRUPT
    await pilot.pause()


async def test_several_sessions_are_open_at_once_and_switch(checkpoints, tmp_path, capsys):
    from workbench.cli import main

    b = tmp_path / "b.wbs"
    assert main(["run", "dla", "--model", str(checkpoints["neox"]), "--prompt", PROMPT, "--answer", " Mary",
                 "--session", str(b), "--json"]) == 0
    capsys.readouterr()
    a = tmp_path / "a.wbs"
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu", workspaces=[Workspace(str(checkpoints["gpt2"]), new_path=a)])
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: "(saved)" in status(app))
        await pilot.press("ctrl+o")
        assert isinstance(app.screen, OpenSessionDialog)
        app.screen.query_one("#open_path", Input).value = str(b)
        await pilot.press("enter")
        await pilot.pause()
        assert app.ws.name == "b.wbs" and "(stored)" in status(app)
        assert str(checkpoints["neox"]) not in app.models  # stored results need no model
        assert app.query_one("#sessions", DataTable).row_count == 2 and _history(app) == 1
        await pilot.press("f3")
        assert app.ws.name == "a.wbs" and app.sub_title == f"a.wbs · {checkpoints['gpt2']}"
        await pilot.press("f3")
        await pilot.press("ctrl+r")  # b's model loads in the background, then the run lands in b
        await wait_for(pilot, lambda: _history(app) == 2 and "(saved)" in status(app))
        app.query_one(TabbedContent).active = "sessions_tab"
        table = app.query_one("#sessions", DataTable)
        table.focus()
        table.move_cursor(row=0)
        await pilot.press("enter")
        assert app.ws.name == "a.wbs" and _history(app) == 1
        app.action_close_session()
        assert [w.name for w in app.workspaces] == ["b.wbs"] and app.ws.name == "b.wbs" and _history(app) == 2
        app.action_close_session()  # the last one stays open
        assert len(app.workspaces) == 1
    with Session.open(a) as s, Session.open(b) as t:
        assert len(s.runs()) == 1 and len(t.runs()) == 2
        assert t.model["spec"] == str(checkpoints["neox"])


async def test_an_unsaved_session_is_saved_under_a_name_then_autosaved(checkpoints, tmp_path):
    path = tmp_path / "later.wbs"
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await pilot.press("ctrl+s")
        assert isinstance(app.screen, AskDialog)
        app.screen.query_one("#save_path", Input).value = str(path)
        await pilot.press("enter")
        await wait_for(pilot, lambda: path.exists())
        await pilot.press("ctrl+n")
        app.screen.query_one("#note_text", Input).value = "L1 moves the name"
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one("#notes", DataTable).row_count == 1
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: "(saved)" in status(app))
        await pilot.press("ctrl+s")  # already saved: says so, writes nothing new
        await pilot.press("ctrl+o")
        app.screen.query_one("#open_path", Input).value = str(tmp_path / "no-such-dir" / "x.wbs")
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "no such folder" in app.screen.message
    with Session.open(path) as s:
        assert len(s.runs()) == 2 and [p["kind"] for p in s.prompts()] == ["single"]
        assert s.notes() == ["L1 moves the name"]


async def test_the_prompt_library_puts_a_pair_back(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await _open_patching(pilot, app, "patch")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 2)
        app.query_one("#pairs-clean", Input).value = "something else"
        app.query_one("#pairs-source", Select).value = "task sample"  # the typed pair's fields hide
        await wait_for(pilot, lambda: not _shows(app, "pairs-clean"))
        app.query_one(TabbedContent).active = "prompts_tab"
        prompts = app.query_one("#prompts", DataTable)
        assert prompts.row_count == 2 and prompts.get_row_at(1)[0] == "pair"
        prompts.focus()
        prompts.move_cursor(row=1)
        await pilot.press("enter")
        assert app.query_one(TabbedContent).active == "pairs"
        assert app.query_one("#pairs-source", Select).value == "one pair"  # the pair put back is the one that runs
        assert _shows(app, "pairs-clean") and _shows(app, "pairs-corrupt")
        assert app.query_one("#pairs-clean", Input).value == app.ws.prompts[1]["prompt"] != "something else"
        assert app.query_one("#pairs-corrupt", Input).value == PROMPT_CORRUPT
        assert app._pane("pairs").form.values()["clean"] == app.ws.prompts[1]["prompt"]

        await _choose(pilot, app, "pairs", "eval")  # task accuracy reads no typed pair
        assert not _shows(app, "pairs-clean")
        app.query_one(TabbedContent).active = "prompts_tab"
        prompts.focus()
        prompts.move_cursor(row=1)
        await pilot.press("enter")
        assert app._pane("pairs").form.analysis.name == "patch" and _shows(app, "pairs-clean")
        await wait_for(pilot, lambda: app.query_one("#pairs-analysis", Select).value == "patch")


async def test_every_patching_method_runs_from_the_patching_tab(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        await _open_patching(pilot, app, "attrib")
        assert _shows(app, "pairs-site") and _shows(app, "pairs-all_pos")
        assert not any(_shows(app, f"pairs-{name}") for name in ("top", "ig", "direction", "positions", "senders"))
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 2)
        assert app._shown.analysis == "attrib" and app.query_one("#pairs-result").heatmap.row_count == 8

        await _choose(pilot, app, "pairs", "eap")
        assert _shows(app, "pairs-top") and _shows(app, "pairs-ig") and _shows(app, "pairs-threshold")
        assert not _shows(app, "pairs-positions") and not _shows(app, "pairs-site")
        app.query_one("#pairs-top", Input).value = "5"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 3)
        view = app.query_one("#pairs-result")
        assert app._shown.analysis == "eap" and app._shown.result.meta["method"] == "EAP"
        assert view.current_view == "table"
        assert view.table.row_count > 5 and "faithfulness" in status(app)
        assert app.query_one("#pairs-progress", ProgressBar).percentage == 1.0  # EAP reports its backward passes

        app.query_one("#pairs-ig", Input).value = "2"  # EAP-IG: the same analysis with IG steps
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 4)
        assert app._shown.params["ig"] == 2 and app._shown.result.meta["method"].startswith("EAP-IG")
        assert view.table.row_count > 5 and "faithfulness" in status(app)

        await _choose(pilot, app, "pairs", "path-patch")
        assert _shows(app, "pairs-senders") and _shows(app, "pairs-receivers") and not _shows(app, "pairs-ig")
        app.query_one("#pairs-senders", Input).value = "L0H1,L0MLP"
        app.query_one("#pairs-receivers", Input).value = "L1H0.q,logits"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 5)
        assert view.table.row_count == 3 and "patched" in status(app)

        app.query_one("#pairs-receivers", Input).value = "L9H9.q"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "unknown node" in app.screen.message
        await pilot.press("escape")
        await _choose(pilot, app, "pairs", "patch")
        assert _shows(app, "pairs-positions") and _shows(app, "pairs-heads") and _shows(app, "pairs-direction")
        app.query_one("#pairs-corrupt", Input).value = "When Mary went"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "differ in token length" in app.screen.message and _history(app) == 5
        await pilot.press("escape")
        app.query_one("#pairs-corrupt", Input).value = PROMPT_CORRUPT
        app.query_one("#pairs-positions", Input).value = "-1"
        app.query_one("#pairs-heads", Input).value = "0,2"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 6)
        grid = app._shown.result
        assert grid.labels["head"] == ["H0", "H2"] and len(grid.labels["pos"]) == 1
        assert view.heatmap.row_count == 4  # 2 layers x 2 heads, one position


async def test_answer_and_distractor_are_picked_from_the_tokens(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt-distractor", Input).focus()
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, TokenPicker))
        picker = app.screen
        assert picker.field == "distractor"
        spelled = [t for t, _ in picker.candidates]
        assert "prediction #1" in picker.candidates[0][1] and "John" in spelled and len(spelled) == len(set(spelled))
        options = picker.query_one(OptionList)
        options.highlighted = spelled.index("John")
        await pilot.press("enter")
        await pilot.pause()
        assert app.query_one("#prompt-distractor", Input).value == "John"
        await pilot.press("f2")
        await wait_for(pilot, lambda: isinstance(app.screen, TokenPicker))
        await pilot.press("escape")
        assert app.query_one("#prompt-distractor", Input).value == "John"


async def test_plots_of_tables_and_grids(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        plot = app.query_one("#plot", ResultPlot)
        assert plot.kind == "bar"
        app.query_one(TabbedContent).active = "plot_tab"
        await pilot.pause()
        drawn = str(plot.render())
        assert "L1ATTN" in drawn and "bias" in drawn
        plot.focus()
        await pilot.press("p")
        assert plot.kind == "bar"  # DLA rows are categories: no line joining them; one numeric column: no scatter
        assert plot_kinds(plot.result) == ["bar"]

        await _choose(pilot, app, "prompt", "logit-lens")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 2)
        assert app._shown.analysis == "logit-lens" and plot.kind == "line"  # rows are layers: a line
        plot.action_cycle_kind()
        assert plot.kind == "bar"
        plot.action_cycle_kind()
        assert plot.kind == "scatter"  # the value against the answer's rank

        await _open_patching(pilot, app, "patch")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 3)
        assert plot.kind == "heatmap"
        app.query_one(TabbedContent).active = "plot_tab"
        await pilot.pause()
        drawn = str(plot.render())
        assert "L0H0" in drawn and "L1H3" in drawn and "clean run" in drawn
        assert "scatter" not in plot_kinds(plot.result)  # no other grid over these cells yet

        await _open_patching(pilot, app, "attrib")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 4)
        assert plot.partner is not None and plot.partner[0].startswith("run 3 (patch")
        app.query_one(TabbedContent).active = "plot_tab"
        for _ in range(3):
            plot.action_cycle_kind()
        assert plot.kind == "scatter"
        await pilot.pause()
        assert "Pearson r =" in str(plot.render())


def test_pearson_correlation():
    assert pearson([1, 2, 3], [2, 4, 6]) == pytest.approx(1.0)
    assert pearson([1, 2, 3], [3, 2, 1]) == pytest.approx(-1.0)
    assert pearson([1, 1, 1], [1, 2, 3]) == 0.0


async def test_the_command_palette_reaches_evaluation_and_the_tabs():
    from textual.command import CommandPalette

    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        for title in ("Run", "Save session", "Open session", "Pick token", "Show tab: History",
                      "Switch to session 1: unsaved", "Evaluate task: ioi", "Analysis: logit lens"):
            assert title in titles
        await pilot.press("ctrl+p")
        await wait_for(pilot, lambda: isinstance(app.screen, CommandPalette))
        await pilot.press(*"Evaluate task: ioi")
        await pilot.pause(0.5)
        await pilot.press("enter")
        await wait_for(pilot, lambda: _history(app) == 2, steps=1200)
        assert app._shown.analysis == "eval" and app._shown.result.labels[-1] == "all"
        assert app._shown.result.values[-1] > 0.9  # the shipped toy solves IOI
        assert app.query_one(TabbedContent).active == "pairs"


async def test_loading_reports_its_stages():
    messages = []
    app = WorkbenchApp("toy:ioi", device="cpu")
    async with app.run_test(size=(80, 24), message_hook=messages.append) as pilot:
        await ready(pilot, app)
        stages = [(m.step, m.of) for m in messages if isinstance(m, WorkbenchApp.LoadProgress)]
        assert stages[0] == (0, 5) and stages[-1] == (5, 5) and len(stages) == 6  # the last: the parity check
        assert not app.query_one("#load_bar").has_class("loading")


async def test_out_of_memory_and_an_empty_prompt_are_dialogs_and_nothing_is_lost(checkpoints, tmp_path, monkeypatch):
    import torch

    import analyses.registry

    dla = analyses.registry.analyses()["dla"]  # every declaration imported: the app's forms take this one
    failing = {"now": False}

    def out_of_memory(*args, **kwargs):
        if failing["now"]:
            raise torch.OutOfMemoryError("CUDA out of memory. Tried to allocate 20.00 GiB")
        return dla.run(*args, **kwargs)

    monkeypatch.setitem(analyses.registry.REGISTRY, "dla", dataclasses.replace(dla, run=out_of_memory))
    path = tmp_path / "s.wbs"
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu", workspaces=[Workspace(str(checkpoints["gpt2"]), new_path=path)])
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        await wait_for(pilot, lambda: "(saved)" in status(app))
        shown = _cells(app.query_one("#prompt-result").table.get_row_at(0))
        failing["now"] = True
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "out of memory" in app.screen.message and "--dtype bfloat16" in app.screen.message
        await pilot.press("escape")
        failing["now"] = False
        app.query_one("#prompt-prompt", Input).value = ""
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "empty" in app.screen.message
        await pilot.press("escape")
        assert _cells(app.query_one("#prompt-result").table.get_row_at(0)) == shown and _history(app) == 1
    with Session.open(path) as s:
        assert len(s.runs()) == 1


async def test_a_huge_table_draws_its_largest_rows_and_says_how_many_more():
    from analyses.results import Table
    from screens.widgets import MAX_ROWS

    values = [(-1) ** i * i / 10 for i in range(5000)]
    huge = Table("dla", [f"L0N{i}" for i in range(5000)], {"value": values}, {"logit": 1.0})
    app = WorkbenchApp("toy:nope", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))  # no such toy: no model needed here
        await pilot.press("escape")
        table = app.query_one("#prompt-result").table
        table.show(huge)
        assert table.row_count == MAX_ROWS + 1
        assert str(table.get_row_at(0)[0]) == "L0N4999"
        assert str(table.get_row_at(MAX_ROWS)[0]) == f"+{5000 - MAX_ROWS} more"
        table.top_k = 3
        table.refresh_rows()
        assert table.row_count == 3


async def test_controls_offer_what_the_model_has(checkpoints):
    app = WorkbenchApp(str(checkpoints["mamba"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        sites = [value for _, value in app.query_one("#pairs-site", Select)._options]
        assert sites == ["resid_pre", "layer_in", "out_proj", "conv", "ssm_in"]
        assert app.query_one("#pairs-site", Select).value == "out_proj"
        assert [value for _, value in app.query_one("#prompt-by", Select)._options] == ["layer"]
        # no attention in Mamba: the prompt tab offers no attention or head analyses
        assert [value for _, value in app.query_one("#prompt-analysis", Select)._options] == [
            "dla", "logit-lens", "generate", "sae-features", "sae-dla"]
        await _open_patching(pilot, app, "patch")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 2)
        assert app._shown.result.meta["site"] == "out_proj" and app.query_one("#pairs-result").heatmap.row_count == 2


async def test_dla_at_a_chosen_position(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        app.query_one("#prompt-pos", Input).value = "3"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: _history(app) == 2)
        assert app._shown.result.meta["pos"] == 3 and app.ws.runs[-1].params["pos"] == 3
        app.query_one("#prompt-pos", Input).value = "99"
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "outside the prompt" in app.screen.message
