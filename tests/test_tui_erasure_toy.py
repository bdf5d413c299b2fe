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


async def test_a_word_outside_a_vocabulary_without_unk_is_a_dialog_not_a_crash():
    """toy:erasure-repeat's tokenizer has no [UNK] (every id a symbol): typing another word shows it
    in the token preview and running names it in a dialog; the app and its earlier result stay."""
    from screens.widgets import ErrorDialog

    app = WorkbenchApp("toy:erasure-repeat", device="cpu")
    async with app.run_test(size=(120, 40)) as pilot:
        await ready(pilot, app)
        table = app.query_one("#prompt-result").table
        rows = table.row_count
        app.query_one("#prompt-prompt").value = "t1 t2 hello t3"
        await pilot.pause(0.3)
        assert "'hello'" in str(app.query_one("#prompt-tokens").render())
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert "not in the model's vocabulary: 'hello'" in app.screen.message
        await pilot.press("escape")
        assert app.is_running and table.row_count == rows
