"""Widgets that render results. They do no tensor math and never touch the model."""

from __future__ import annotations

from rich.text import Text
from textual.app import ComposeResult
from textual.binding import Binding
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from analyses.results import Grid, Table


def _fmt(v: object) -> str:
    return f"{v:+.4f}" if isinstance(v, float) else str(v)


MAX_ROWS = 2000  # more rows than this draw slowly (neuron DLA of a real model has tens of thousands)


class ResultTable(DataTable):
    """A result table: one row per label, one column per result column. ``s`` sorts by magnitude
    (and back to model order); the pane's filter narrows rows by label and to the top k. Past
    MAX_ROWS rows only the largest by magnitude are drawn, with a last row saying how many more."""

    HELP = """Result rows. **s** sorts by |value| or back to model order; the filter and top-k boxes
above narrow the rows. Past 2000 rows only the largest by |value| are drawn (the last row says
how many more); F4 exports every row."""
    BINDINGS = [Binding("s", "toggle_sort", "Sort |value|", id="sort")]

    def __init__(self, **kwargs) -> None:
        super().__init__(zebra_stripes=True, cursor_type="row", **kwargs)
        self.table: Table | None = None
        self.by_magnitude = False
        self.label_filter = ""
        self.top_k: int | None = None

    def show(self, table: Table | None) -> None:
        self.table = table
        self.refresh_rows()

    def refresh_rows(self) -> None:
        self.clear(columns=True)
        table = self.table
        if table is None:
            return
        keys = ["label", *table.columns]
        rows = [r for r in table.rows() if self.label_filter.lower() in r["label"].lower()]
        main = next(iter(table.columns))
        keep = self.top_k or (MAX_ROWS if len(rows) > MAX_ROWS else None)
        if self.by_magnitude or keep:
            rows.sort(key=lambda r: -abs(r[main]) if isinstance(r[main], (int, float)) else 0)
        cells = [[_fmt(row[k]) for k in keys] for row in rows[:keep]]
        if not self.top_k and keep and len(rows) > keep:
            cells.append([f"+{len(rows) - keep} more", *[""] * (len(keys) - 1)])
        _add_sized_columns(self, keys, cells)
        for row in cells:
            self.add_row(*row)

    def action_toggle_sort(self) -> None:
        self.by_magnitude = not self.by_magnitude
        self.refresh_rows()


def _add_sized_columns(table: DataTable, headers: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell, fixed now rather than measured later on idle (so a
    table is never drawn at header width in between)."""
    for i, header in enumerate(headers):
        width = max([len(header)] + [len(r[i]) for r in rows])
        table.add_column(header, key=f"c{i}", width=width)


def grid_rows(grid: Grid) -> tuple[list[tuple[str, list[float]]], list[str]]:
    """A grid as labelled rows of a 2-D map: layer x pos as it is; layer x pos x head as one row
    per (layer, head) over positions; a 1-D grid as one column."""
    labels, values = grid.labels, grid.values
    if "pos" in grid.axes and grid.axes[-1] == "head":
        rows = [(f"{layer}{head}", [cell[h] for cell in values[li]])
                for li, layer in enumerate(labels["layer"]) for h, head in enumerate(labels["head"])]
        return rows, labels["pos"]
    if len(grid.axes) == 2:
        return list(zip(labels[grid.axes[0]], values)), labels[grid.axes[1]]
    return [(label, [v]) for label, v in zip(labels[grid.axes[0]], values)], ["value"]


def grid_shade(grid: Grid):
    """A cell's colour position in [-1, 1]: patching grids from the corrupted baseline (-1) to the
    clean one (+1); other grids relative to their largest magnitude."""
    if "clean" in grid.meta and "corrupt" in grid.meta:
        lo, hi = grid.meta["corrupt"], grid.meta["clean"]
        span = (hi - lo) or 1.0
        return lambda v: 2 * (v - lo) / span - 1
    scale = max((abs(v) for _, vs in grid_rows(grid)[0] for v in vs), default=1.0) or 1.0
    return lambda v: v / scale


def diverging_rgb(x: float) -> tuple[int, int, int]:
    """x in [-1, 1] as a colour: blue (negative), white (0), red (positive)."""
    x = max(-1.0, min(1.0, x))
    fade = int(255 * (1 - abs(x)))
    return (255 if x > 0 else fade, fade, 255 if x < 0 else fade)


def _diverging(x: float) -> str:
    """A background colour for x in [-1, 1]."""
    return "on rgb({},{},{})".format(*diverging_rgb(x))


class Heatmap(DataTable):
    """A grid or a per-head DLA table as a coloured table, axes labelled by layers, heads and
    tokens. Patching grids are coloured by how far each cell moves the metric from the corrupted
    baseline towards the clean one; DLA by value relative to the largest magnitude."""

    HELP = "Heatmap: rows are layers (and heads), columns positions or heads. Colour: red = toward the answer."

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="cell", **kwargs)

    def show_grid(self, grid: Grid) -> None:
        rows, columns = grid_rows(grid)
        self._fill(rows, columns, grid_shade(grid))

    def show_heads(self, table: Table) -> None:
        """A DLA table by head as a layer x head map."""
        cells = {label: v for label, v in zip(table.labels, table.values)}
        layers = sorted({int(k[1:].split("H")[0]) for k in cells if "H" in k and k.startswith("L")})
        heads = sorted({int(k.split("H")[1]) for k in cells if "H" in k and k.startswith("L")})
        rows = [(f"L{layer}", [cells[f"L{layer}H{h}"] for h in heads]) for layer in layers]
        scale = max((abs(v) for _, vs in rows for v in vs), default=1.0) or 1.0
        self._fill(rows, [f"H{h}" for h in heads], lambda v: v / scale)

    def _fill(self, rows: list, columns: list[str], shade) -> None:
        self.clear(columns=True)
        texts = [[label, *(f"{v:+.2f}" for v in values)] for label, values in rows]
        _add_sized_columns(self, ["", *columns], texts)
        for (label, values), text in zip(rows, texts):
            self.add_row(label, *(Text(t, style=f"black {_diverging(shade(v))}") for t, v in zip(text[1:], values)))


class ErrorDialog(ModalScreen[None]):
    """An error message; the app and its data stay as they were."""

    DEFAULT_CSS = """
    ErrorDialog { align: center middle; }
    ErrorDialog > Static { width: 70%; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    """
    BINDINGS = [Binding("escape", "dismiss", "Close", id="close_dialog"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, message: str) -> None:
        super().__init__()
        self.message = message

    def compose(self) -> ComposeResult:
        # A Text, not markup: messages name tokens such as [BOS] that markup would swallow.
        yield Static(Text.assemble(("Error", "bold"), f"\n\n{self.message}\n\n(Escape or Enter to close)"))

    def action_dismiss(self) -> None:
        self.dismiss()
