"""The TUI driven as a person would, through Textual's Pilot."""

from __future__ import annotations

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
