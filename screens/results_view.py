"""One widget for any result: the app hands it a result and it picks the view (table, heatmap,
coloured tokens), so a new result type needs no new pane. Conversions to tables are plain data."""

from __future__ import annotations

from collections.abc import Sequence

from textual.app import ComposeResult
from textual.containers import Vertical
from textual.widgets import ContentSwitcher, Static

from analyses.results import Grid, Result, Scatter, Series, Table, TokenValues
from screens.widgets import Heatmap, ResultTable, TokenText, fit_summary, grid_baseline, grid_rows, partial_note


def grid_table(grid: Grid) -> Table:
    """A grid as one row per cell ("L3H2 13:to"), so the table's filter, sort and top-k reach single
    cells; grids with a baseline get a first column ``change`` (cell minus baseline, the effect of
    patching it), sorted by that rather than by the raw metric."""
    rows, columns = grid_rows(grid)
    one_column = columns == ["value"]
    labels = [label if one_column else f"{label} {column}" for label, _ in rows for column in columns]
    values = [float(v) for _, vs in rows for v in vs]
    name = grid.meta.get("metric", "value")
    if "corrupt" not in grid.meta:
        return Table(grid.analysis, labels, {name: values}, {"label_name": "cell"})
    base, _ = grid_baseline(grid)
    return Table(grid.analysis, labels, {"change": [v - base for v in values], name: values}, {"label_name": "cell"})


def scatter_table(scatter: Scatter) -> Table:
    """A scatter's points as rows: label, x, y."""
    x_name = scatter.x_name if scatter.x_name != scatter.y_name else f"{scatter.x_name} (x)"
    columns = {x_name: scatter.x, scatter.y_name: scatter.y}
    return Table(scatter.analysis, scatter.labels, columns, {"label_name": "label"})


def series_table(series: Series) -> Table:
    """A series as rows: its x, then one column per line."""
    return Table(series.analysis, [str(x) for x in series.x], dict(series.lines), {"label_name": series.x_name})


def views_of(result: Result | None) -> list[str]:
    """The views a result has, its natural one first (ids of ResultView's children)."""
    if result is None:
        return []
    if isinstance(result, Grid):
        return ["map", "table"]
    if isinstance(result, TokenValues):
        return ["tokens"]
    if isinstance(result, Table) and result.meta.get("by") == "head":
        return ["table", "map"]
    return ["table"]


class ResultView(Vertical):
    """Any result, in the view that suits it; ``toggle_view()`` switches to its other view.

    Children (ids are stable; query them within the view, e.g. ``view.query_one("#table")``, or use
    the properties, since an app may hold several views):

    - ``#caption`` (Static, hidden when empty): the lines above the view: what the result found
      (its declaration's headline facts, as the CLI prints them), a scatter's fit ("r = -0.702
      slope = -0.613 ± 0.013  n = 9910"), the heatmap's hidden columns and a cancelled sweep's
      missing cells.
    - ``#views`` (ContentSwitcher) holding the views:
      ``#table`` (ResultTable): Table, the cells of a Grid, the points of a Scatter, a Series;
      ``#map`` (Heatmap): Grid, a DLA table by head (layer x head);
      ``#tokens`` (TokenText): TokenValues.

    Views per result (first shown first): Grid map/table; Table by head table/map; other Table,
    Scatter, Series table; TokenValues tokens. ``label_filter`` / ``top_k`` pass through to the
    table view."""

    HELP = """### Result
The result on show. Tables: **s** sorts by |value| or back to model order; the filter and
top-k boxes narrow the rows. **ctrl+t** switches between a result's two views: a patching
grid as a heatmap or as one row per cell (sortable by the change from the baseline), a DLA by
head as a table or as a layer x head map. The heatmap abbreviates values and tokens to fit
the width; columns that never move from the baseline are hidden when not all fit, and the
line above says which. A scatter lists its points under its fit (r, slope ± standard error,
n); a series lists one column per line. Token values colour each token [tok] by its value
(red positive, blue negative). · marks a cell a cancelled sweep never reached."""

    DEFAULT_CSS = """
    ResultView { height: 1fr; }
    ResultView > #caption { height: auto; max-height: 3; color: $text-muted; padding: 0 1; }
    ResultView > #views { height: 1fr; }
    ResultView ResultTable, ResultView Heatmap { height: 1fr; }
    """

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: Result | None = None
        self.views: list[str] = []
        self._note = ""
        self.facts: list[str] = []

    def compose(self) -> ComposeResult:
        yield Static(id="caption", markup=False)
        with ContentSwitcher(initial="table", id="views"):
            yield ResultTable(id="table")
            yield Heatmap(id="map")
            yield TokenText(id="tokens")

    def on_mount(self) -> None:
        for child in (self.table, self.heatmap, self.token_text):
            child.HELP = f"{self.HELP}\n\n{type(child).HELP}"  # F1 on a view: the whole story
        self._update_caption()

    @property
    def table(self) -> ResultTable:
        return self.query_one("#table", ResultTable)

    @property
    def heatmap(self) -> Heatmap:
        return self.query_one("#map", Heatmap)

    @property
    def token_text(self) -> TokenText:
        return self.query_one("#tokens", TokenText)

    @property
    def current_view(self) -> str | None:
        """The id of the view on show, None when no result is."""
        return self.query_one("#views", ContentSwitcher).current if self.result is not None else None

    def show(self, result: Result | None, facts: Sequence[str] = ()) -> None:
        """Show ``result`` in its natural view (None clears every view), ``facts`` (what it found)
        above it."""
        self.result, self.views, self.facts = result, views_of(result), list(facts) if result is not None else []
        self._note = (fit_summary(result) if isinstance(result, Scatter)
                      else partial_note(result) if isinstance(result, Grid) else "")
        self.table.show(_as_table(result))
        if isinstance(result, Grid):
            self.heatmap.show_grid(result)
        elif "map" in self.views:
            self.heatmap.show_heads(result)
        else:
            self.heatmap.clear(columns=True)
        self.token_text.show(result if isinstance(result, TokenValues) else None)
        self._switch(self.views[0] if self.views else "table")

    def show_stream(self, text: str) -> None:
        """The output of a run still under way (generation's text so far) above the view, token by token."""
        caption = self.query_one("#caption", Static)
        caption.update(text)
        caption.display = bool(text)

    def toggle_view(self) -> str | None:
        """Switch to the result's next view; returns the view now on show (unchanged when the
        result has only one)."""
        if len(self.views) > 1:
            current = self.query_one("#views", ContentSwitcher).current
            self._switch(self.views[(self.views.index(current) + 1) % len(self.views)])
        return self.current_view

    @property
    def label_filter(self) -> str:
        return self.table.label_filter

    @label_filter.setter
    def label_filter(self, text: str) -> None:
        self.table.label_filter = text
        self.table.refresh_rows()

    @property
    def top_k(self) -> int | None:
        return self.table.top_k

    @top_k.setter
    def top_k(self, k: int | None) -> None:
        self.table.top_k = k
        self.table.refresh_rows()

    @property
    def caption(self) -> str:
        """The line above the view ("" when none)."""
        return str(self.query_one("#caption", Static).content)

    def _switch(self, view: str) -> None:
        self.query_one("#views", ContentSwitcher).current = view
        self._update_caption()

    def on_heatmap_fitted(self, event: Heatmap.Fitted) -> None:
        event.stop()
        self._update_caption()

    def _update_caption(self) -> None:
        on_map = self.result is not None and self.query_one("#views", ContentSwitcher).current == "map"
        parts = [" · ".join(self.facts), self._note, self.heatmap.hidden_note if on_map else ""]
        text = "; ".join(p for p in parts if p)
        caption = self.query_one("#caption", Static)
        caption.update(text)
        caption.display = bool(text)


def _as_table(result: Result | None) -> Table | None:
    """What the table view shows for a result (None for token values, which have no table)."""
    if isinstance(result, Table):
        return result
    if isinstance(result, Grid):
        return grid_table(result)
    if isinstance(result, Scatter):
        return scatter_table(result)
    if isinstance(result, Series):
        return series_table(result)
    return None
