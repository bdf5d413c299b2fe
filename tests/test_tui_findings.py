"""The TUI says what a result found, as the CLI does: the result header above the table, the status
bar and the history row carry the declaration's headline facts. Seen: recall-edit's TUI output
never named the edit it chose."""

from __future__ import annotations

from pilot import choose, ready, status, wait_for

from textual.widgets import DataTable

from workbench.app import WorkbenchApp


async def test_recall_edit_names_its_chosen_edit_in_the_header_status_and_history():
    app = WorkbenchApp("toy:recall", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        choose(app, "model", "recall-edit", n="20")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "recall-edit", steps=2400)
        edit = app.ws.runs[-1].result.meta["edit"]
        view = app._pane("model").view
        assert f"chosen edit {edit}" in view.caption and "held-out gain" in view.caption
        assert f"chosen edit {edit}" in status(app)
        history = app.query_one("#history", DataTable)
        assert f"chosen edit {edit}" in str(history.get_row_at(history.row_count - 1)[3])
