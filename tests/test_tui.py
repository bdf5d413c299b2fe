"""The TUI driven as a person would, through Textual's Pilot."""

from __future__ import annotations

import json

from screens.dla_view import ErrorDialog, ResultTable
from workbench.app import WorkbenchApp


async def _wait(pilot, condition, steps=300):
    for _ in range(steps):
        if condition():
            return
        await pilot.pause(0.05)
    raise AssertionError("timed out waiting for the app")


async def test_opens_on_a_dla_result_and_reports_bad_tokens_in_a_dialog(checkpoints):
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ResultTable)
        await _wait(pilot, lambda: table.row_count > 0)
        assert table.row_count == 7  # embed, pos_embed, 2 x (ATTN, MLP), bias
        app.query_one("#answer").value = " Zorro"
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
        await _wait(pilot, lambda: app.query_one(ResultTable).row_count > 0)
        status = str(app.query_one("#status").render())
        assert "[[BOS]] [When] [Mary]" in status
        app.query_one("#answer").value = "[BOS] Mary"
        await pilot.press("ctrl+r")
        await _wait(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "'[BOS]'" in str(app.screen.query_one("Static").render())


async def test_a_session_shows_its_runs_before_the_model_loads_and_autosaves(checkpoints, tmp_path, capsys):
    from sessions.store import Session
    from workbench.cli import main

    path = tmp_path / "s.wbs"
    assert main(["run", "dla", "--model", str(checkpoints["gpt2"]), "--prompt", "When Mary and John went to the store",
                 "--answer", " Mary", "--session", str(path), "--json"]) == 0
    stored = json.loads(capsys.readouterr().out)
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu", session=Session.open(path))
    async with app.run_test(size=(80, 24)) as pilot:
        table = app.query_one(ResultTable)
        await pilot.pause()
        assert table.row_count == len(stored["rows"]) and app.loaded is None  # no model needed to show it
        assert "(stored)" in str(app.query_one("#status").render())
        first = table.get_row_at(0)
        assert first[1] == f"{stored['rows'][0]['value']:+.4f}"
        await pilot.press("ctrl+r")  # a new run loads the model, runs, and appends to the session
        await _wait(pilot, lambda: "(saved)" in str(app.query_one("#status").render()))
    with Session.open(path) as s:
        assert len(s.runs()) == 2


async def test_a_new_session_file_is_created_for_the_model(checkpoints, tmp_path):
    from sessions.store import Session

    path = tmp_path / "new.wbs"
    app = WorkbenchApp(str(checkpoints["gpt2"]), device="cpu", new_session=str(path))
    async with app.run_test(size=(80, 24)) as pilot:
        await _wait(pilot, lambda: "(saved)" in str(app.query_one("#status").render()))
    with Session.open(path) as s:
        assert s.model["spec"] == str(checkpoints["gpt2"]) and len(s.runs()) == 1
