"""The TUI driven as a person would, through Textual's Pilot."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from conftest import PROMPT
from pilot import ready as _ready
from pilot import started as _started
from pilot import wait_for as _wait

from textual.widgets import TabbedContent

from screens.widgets import ErrorDialog
from sessions.workspace import Workspace
from workbench.app import WorkbenchApp

PROMPT_CORRUPT = PROMPT.replace("John gave", "Mary gave")
SNAPSHOT_APP = Path(__file__).parent / "snapshot_app.py"


async def test_opens_on_a_dla_result_and_reports_bad_tokens_in_a_dialog(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one("#prompt-result").table
        await _wait(pilot, lambda: table.row_count > 0)
        assert table.row_count == 7  # embed, pos_embed, 2 x (ATTN, MLP), bias
        app.query_one("#prompt-answer").value = " Zorro"
        await pilot.press("ctrl+r")
        await _wait(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "Zorro" in app.screen.message
        await pilot.press("escape")
        assert not isinstance(app.screen, ErrorDialog)
        assert table.row_count == 7  # the earlier result is still there


async def test_a_model_that_fails_to_load_shows_a_dialog():
    app = WorkbenchApp("toy:nope", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "unknown toy" in app.screen.message


async def test_token_brackets_are_shown_literally(checkpoints):
    """Tokens are shown as [tok]; they must not be parsed as markup (nor the errors naming them)."""
    app = WorkbenchApp(str(checkpoints["llama-gqa"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _wait(pilot, lambda: app.query_one("#prompt-result").table.row_count > 0)
        preview = str(app.query_one("#prompt-tokens").render())
        assert "[[BOS]] [When] [Mary]" in preview
        app.query_one("#prompt-answer").value = "[BOS] Mary"
        await pilot.press("ctrl+r")
        await _wait(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "[[BOS]][Mary]" in str(app.screen.query_one("Static").render())  # the tokens as the preview shows them


async def test_a_session_shows_its_runs_before_the_model_loads_and_autosaves(checkpoints, tmp_path, capsys):
    from sessions.store import Session
    from workbench.cli import main

    path = tmp_path / "s.wbs"
    assert main(["run", "dla", "--model", str(checkpoints["gpt2"]), "--prompt", "When Mary and John went to the store",
                 "--answer", " Mary", "--session", str(path), "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu", workspaces=[Workspace.from_file(path)])
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one("#prompt-result").table
        await _started(pilot, app)
        assert table.row_count == len(stored["rows"]) and app.loaded is None  # no model needed to show it
        assert "(stored)" in str(app.query_one("#status").render())
        first = table.get_row_at(0)
        assert str(first[1]) == f"{stored['rows'][0]['value']:+.4f}"
        await pilot.press("ctrl+r")  # a new run loads the model, runs, and appends to the session
        await _wait(pilot, lambda: "(saved)" in str(app.query_one("#status").render()))
    with Session.open(path) as s:
        assert len(s.runs()) == 2


async def test_a_new_session_file_is_created_for_the_model(checkpoints, tmp_path):
    from sessions.store import Session

    path = tmp_path / "new.wbs"
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu", workspaces=[Workspace(str(checkpoints["gpt2"]), new_path=path)])
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait(pilot, lambda: "(saved)" in str(app.query_one("#status").render()))
    with Session.open(path) as s:
        assert s.model["spec"] == str(checkpoints["gpt2"]) and len(s.runs()) == 1


async def test_patching_tab_history_and_export(checkpoints, tmp_path, monkeypatch):
    from textual.widgets import DataTable, ProgressBar, TabbedContent


    monkeypatch.chdir(tmp_path)
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        app.query_one(TabbedContent).active = "pairs"
        app.query_one("#pairs-corrupt").value = PROMPT_CORRUPT
        await pilot.pause()
        assert "(same length)" in str(app.query_one("#pairs-tokens").render())
        await pilot.press("ctrl+r")
        heatmap = app.query_one("#pairs-result").heatmap
        await _wait(pilot, lambda: heatmap.row_count == 8)  # 2 layers x 4 heads
        assert app.query_one("#pairs-progress", ProgressBar).percentage == 1.0
        history = app.query_one("#history", DataTable)
        assert history.row_count == 2
        app.query_one(TabbedContent).active = "history_tab"
        history.move_cursor(row=0)
        await pilot.press("f4")
        await pilot.pause()
        await pilot.press("f4")  # again: a second pair of files, nothing overwritten
        await pilot.pause()
        exported = sorted(p.name for p in tmp_path.iterdir())
        assert exported == ["workbench-unsaved-dla-2.csv", "workbench-unsaved-dla-2.json",
                            "workbench-unsaved-dla.csv", "workbench-unsaved-dla.json"]
        data = json.loads((tmp_path / "workbench-unsaved-dla.json").read_text())
        assert data["params"]["prompt"].startswith("When Mary and John") and data["params"]["by"] == "layer" and "spec" in data["model"]
        app.query_one("#pairs-corrupt").value = "When Mary went"
        await pilot.pause()
        assert "LENGTHS DIFFER" in str(app.query_one("#pairs-tokens").render())


async def test_dla_filters_granularity_and_head_map(checkpoints):
    from textual.widgets import Select


    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await _ready(pilot, app)
        app.query_one("#prompt-by", Select).value = "head"
        await pilot.press("ctrl+r")
        table = app.query_one("#prompt-result").table
        await _wait(pilot, lambda: table.row_count == 13)
        app.query_one("#prompt-topk").value = "3"
        await pilot.pause()
        assert table.row_count == 3
        values = [abs(float(str(table.get_row_at(i)[1]))) for i in range(3)]
        assert values == sorted(values, reverse=True)
        app.query_one("#prompt-topk").value = ""
        app.query_one("#prompt-filter").value = "L1H"
        await pilot.pause()
        assert table.row_count == 4
        await pilot.press("ctrl+t")
        assert app.query_one("#prompt-result").heatmap.row_count == 2  # layers x heads


async def test_user_keymap_and_help(checkpoints, tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path))
    (tmp_path / "workbench").mkdir()
    (tmp_path / "workbench" / "keymap.toml").write_text('[keymap]\nrun = "f5"\n')
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await _ready(pilot, app)
        app.query_one("#prompt-answer").value = " Zorro"
        await pilot.press("f5")
        await _wait(pilot, lambda: isinstance(app.screen, ErrorDialog))
        await pilot.press("escape")
        app.query_one("#prompt-prompt").focus()
        await pilot.press("f1")
        await pilot.pause()
        from screens.dialogs import HelpScreen

        assert isinstance(app.screen, HelpScreen) and "One prompt" in app.screen.text
        keys = dict(app.screen.keys)
        assert keys["f5"].startswith("Run") and "f2" in keys and "f9" in keys  # hidden ones too; run rebound
        await pilot.press("escape")
        assert not isinstance(app.screen, HelpScreen)


@pytest.mark.parametrize("size", [(80, 24), (120, 40)], ids=["80x24", "120x40"])
@pytest.mark.parametrize("tab", ["prompt", "pairs", "plot_tab"])
def test_layout(snap_compare, tab, size):
    async def run_before(pilot):
        await _ready(pilot, pilot.app)
        if tab == "pairs":  # toy:ioi's pairs open on a sample of its task; this layout is of one typed pair
            pilot.app.query_one("#pairs-source").value = "one pair"
            pilot.app.query_one("#pairs-corrupt").value = pilot.app.query_one("#pairs-clean").value.replace("John gave", "Mary gave")
            pilot.app.query_one(TabbedContent).active = "pairs"
            await pilot.press("ctrl+r")
            await _wait(pilot, lambda: len(pilot.app.ws.runs) == 2)
        pilot.app.query_one(TabbedContent).active = tab
        await pilot.pause(0.3)

    assert snap_compare(SNAPSHOT_APP, terminal_size=size, run_before=run_before)


def test_help_layout_80x24(snap_compare):
    async def run_before(pilot):
        await _ready(pilot, pilot.app)
        await pilot.press("f1")
        await pilot.pause(0.3)

    assert snap_compare(SNAPSHOT_APP, terminal_size=(80, 24), run_before=run_before)
