"""The TUI says what a result found, as the CLI does: the result header above the table, the status
bar and the history row carry the declaration's headline facts. Seen: recall-edit's TUI output
never named the edit it chose."""

from __future__ import annotations

from pilot import choose, ready, status, wait_for

from textual.app import App, ComposeResult
from textual.widgets import DataTable

from analyses.results import Table
from screens.results_view import ResultView
from workbench.app import WorkbenchApp


async def test_recall_edit_names_its_chosen_edit_in_the_header_status_and_history():
    app = WorkbenchApp("toy:recall", device="cpu")
    async with app.run_test(size=(80, 24)) as pilot:
        await ready(pilot, app)
        choose(app, "model", "recall-edit", n="20", comps="2", scales="0")
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: app.ws.runs[-1].analysis == "recall-edit", steps=2400)
        edit = app.ws.runs[-1].result.meta["edit"]
        view = app._pane("model").view
        assert f"chosen edit {edit}" in view.caption and "held-out gain" in view.caption
        assert f"chosen edit {edit}" in status(app)
        history = app.query_one("#history", DataTable)
        assert f"chosen edit {edit}" in str(history.get_row_at(history.row_count - 1)[3])


class _One(App):
    def __init__(self, widget) -> None:
        super().__init__()
        self.widget = widget

    def compose(self) -> ComposeResult:
        yield self.widget


async def test_result_table_cells_read_by_kind():
    """Seen: KS p = 5.6e-89 drawn as +0.0000 and text counts as +35.0000."""
    table = Table("neuron-ablation", ["L0H5", "all"], {"ks_d": [1.0, 1.0], "ks_p": [5.6e-89, 5.6e-89],
                                                       "n_active": [35, 35], "active_rate": [0.4375, float("nan")]})
    view = ResultView()
    app = _One(view)
    async with app.run_test(size=(100, 20)) as pilot:
        view.show(table, ["L0H5: KS D 1.000, p 5.6e-89"])
        await pilot.pause()
        cells = [str(c) for c in view.table.get_row_at(1)]
        assert cells == ["all", "+1.0000", "5.6e-89", "35", "·"]
        assert view.caption.startswith("L0H5: KS D 1.000, p 5.6e-89")
