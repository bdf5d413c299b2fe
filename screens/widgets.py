"""Widgets that render results. They do no tensor math and never touch the model.

Every string a result carries (labels, tokens such as ``[BOS]``) is drawn as a rich ``Text``, never
parsed as markup: DataTable parses plain ``str`` cells and labels as markup, which would swallow
bracketed tokens."""

from __future__ import annotations

import math
from collections.abc import Callable

from rich.text import Text
from textual import events
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import VerticalScroll
from textual.message import Message
from textual.screen import ModalScreen
from textual.widgets import DataTable, Static

from analyses.report import column_kind, number
from analyses.results import Grid, Scatter, Table, TokenValues

def finite(v: object) -> bool:
    """A number that can be drawn: a cancelled sweep leaves NaN in the cells it never reached."""
    return isinstance(v, (int, float)) and math.isfinite(v)


def _fmt(v: object, kind: str = "value") -> str:
    """A cell by its column's kind (analyses.report): a count whole, a p-value scientific."""
    if isinstance(v, float) and not math.isfinite(v):
        return BLANK
    return number(v, kind)


BLANK = "·"  # a cell with no value (NaN: a cancelled sweep never reached it)
MAX_ROWS = 2000  # more rows than this draw slowly (neuron DLA of a real model has tens of thousands)


def _magnitude(v: object) -> float:
    """Sort key: larger |value| first; text and NaN last."""
    return -abs(v) if finite(v) else math.inf


class ResultTable(DataTable):
    """A result table: one row per label, one column per result column. ``s`` sorts by magnitude
    (and back to model order); ``label_filter`` and ``top_k`` narrow rows by label and to the top
    k. Past MAX_ROWS rows only the largest by magnitude are drawn, with a last row saying how many
    more. The label column is headed ``table.meta["label_name"]`` when given (a series' x axis)."""

    HELP = """Result rows. **s** sorts by |value| or back to model order; the filter and top-k boxes
above narrow the rows. Past 2000 rows only the largest by |value| are drawn (the last row says
how many more); F4 exports every row."""
    # A one-word description: at 80 columns the app's own keys fill the footer (see the report
    # on the "^p palettet" glitch in screens/plots.py).
    BINDINGS = [Binding("s", "toggle_sort", "Sort", id="sort", tooltip="rows by |value| or back to model order")]

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
        rows = [r for r in table.rows() if self.label_filter.lower() in str(r["label"]).lower()]
        main = next(iter(table.columns))
        keep = self.top_k or (MAX_ROWS if len(rows) > MAX_ROWS else None)
        if self.by_magnitude or keep:
            rows.sort(key=lambda r: _magnitude(r[main]))
        kinds = {k: "text" if k == "label" else column_kind(k, table.columns[k]) for k in keys}
        cells = [[_fmt(row[k], kinds[k]) for k in keys] for row in rows[:keep]]
        if not self.top_k and keep and len(rows) > keep:
            cells.append([f"+{len(rows) - keep} more", *[""] * (len(keys) - 1)])
        _add_sized_columns(self, [table.meta.get("label_name", "label"), *table.columns], cells)
        for row in cells:
            self.add_row(*(Text(c) for c in row))

    def action_toggle_sort(self) -> None:
        self.by_magnitude = not self.by_magnitude
        self.refresh_rows()


def _add_sized_columns(table: DataTable, headers: list[str], rows: list[list[str]]) -> None:
    """Columns as wide as their widest cell, fixed now rather than measured later on idle (so a
    table is never drawn at header width in between)."""
    for i, header in enumerate(headers):
        width = max([len(header)] + [len(r[i]) for r in rows])
        table.add_column(Text(header), key=f"c{i}", width=width)


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


def grid_baseline(grid: Grid) -> tuple[float, str]:
    """The value a cell has when patching it changes nothing, and what that is: the run being
    patched into (corrupted for denoising and attribution, clean for noising, resampling and mean
    ablation); 0 for grids without baselines."""
    if "corrupt" not in grid.meta:
        return 0.0, "zero"
    if grid.meta.get("method", "denoise") == "denoise" or "clean" not in grid.meta:
        return float(grid.meta["corrupt"]), "the corrupted run"
    return float(grid.meta["clean"]), "the clean run"


def grid_shade(grid: Grid) -> Callable[[float], float]:
    """A cell's colour position in [-1, 1]: patching grids from the corrupted baseline (-1) to the
    clean one (+1); other grids relative to their largest finite magnitude."""
    if "clean" in grid.meta and "corrupt" in grid.meta:
        lo, hi = grid.meta["corrupt"], grid.meta["clean"]
        span = (hi - lo) or 1.0
        return lambda v: 2 * (v - lo) / span - 1
    scale = max((abs(v) for _, vs in grid_rows(grid)[0] for v in vs if finite(v)), default=1.0) or 1.0
    return lambda v: v / scale


def diverging_rgb(x: float) -> tuple[int, int, int]:
    """x in [-1, 1] as a colour: blue (negative), white (0), red (positive)."""
    x = max(-1.0, min(1.0, x))
    fade = int(255 * (1 - abs(x)))
    return (255 if x > 0 else fade, fade, 255 if x < 0 else fade)


def _diverging(x: float) -> str:
    """A background colour for x in [-1, 1]."""
    return "on rgb({},{},{})".format(*diverging_rgb(x))


def cell_style(v: float, shade: Callable[[float], float]) -> str:
    """Dark text on the value's colour; no colour for a missing (NaN) value."""
    return f"black {_diverging(shade(v))}" if finite(v) else "dim"


def compact(v: float, width: int = 5) -> str:
    """``v`` in at most ``width`` characters, as many decimals as fit ("+0.12" / "+.123" at 5,
    "+.12" / "-1.3" / "+12" at 4, "+1e5" when even the integer does not fit); NaN as BLANK."""
    if not finite(v):
        return BLANK if v != v else ("+inf" if v > 0 else "-inf")
    for decimals in range(max(0, width - 2), -1, -1):
        s = f"{v:+.{decimals}f}"
        if len(s) > width and s[1:3] == "0.":
            s = s[0] + s[2:]  # "+0.12" -> "+.12"
        if len(s) <= width:
            return s
    mantissa, exponent = f"{v:+.0e}".split("e")
    return f"{mantissa}e{int(exponent)}"


def short_label(label: str, width: int) -> str:
    """A column label cut to ``width``: a position label "13: to" keeps its token ("to"), or its
    index when the token is blank."""
    index, _, token = label.partition(":")
    return ((token.strip() or index) if token else label)[:width]


CELL_WIDTHS = (5, 4)  # characters per heatmap value, tried widest first
SCROLLBAR = 2  # Textual's default vertical scrollbar width, kept free so columns never hide under it
FLAT = 0.01  # a column is flat when every cell is within 1% of the colour scale of the baseline


class Heatmap(DataTable):
    """A grid or a per-head DLA table as a coloured table, axes labelled by layers, heads and
    tokens. Patching grids are coloured by how far each cell moves the metric from the corrupted
    baseline towards the clean one; DLA by value relative to the largest magnitude.

    Fits its width (re-fitted on resize): values in 5, else 4, characters (``compact``), column
    labels cut to the cell (``short_label``), the row-label column fixed while scrolling
    sideways. When the columns still do not fit, the flat ones (every cell at the baseline, see
    ``grid_baseline``) are hidden, and if that is not enough only the columns that move most stay
    (an attention map: the keys holding the most attention): ``hidden`` lists their labels and
    ``hidden_note`` says how many, why and which column indices ("19 of 24 columns hidden (no
    change from the corrupted run): 0, 2-8", "26 of 40 columns hidden (the least attention): ...");
    ``caption`` adds a cancelled sweep's missing cells (drawn as ·). A ``Heatmap.Fitted`` message
    carries the caption each time the map is refitted, for a parent to show."""

    HELP = """Heatmap: rows are layers (and heads), columns positions or heads. Colour: red = toward the
answer (the clean run), blue = the corrupted run. Values are abbreviated to fit; columns that never
move from the baseline are hidden when not all fit, then those that move least (on an attention
map, the keys with the least attention); the line above says which. · = not computed."""

    class Fitted(Message):
        """The map was (re)drawn at a width; ``caption`` says what it hides ("" when nothing)."""

        def __init__(self, heatmap: "Heatmap", caption: str) -> None:
            super().__init__()
            self.heatmap = heatmap
            self.caption = caption

    def __init__(self, **kwargs) -> None:
        super().__init__(cursor_type="cell", fixed_columns=1, cell_padding=0, **kwargs)
        self._source: tuple[list, list[str], Callable[[float], float], float, str, str] | None = None
        self._fitted_width = 0
        self.hidden: list[str] = []
        self.hidden_note = ""
        self.caption = ""
        self.corner = ""  # the column axis's name, above the row labels

    def show_grid(self, grid: Grid) -> None:
        rows, columns = grid_rows(grid)
        self.corner = "pos" if "pos" in grid.axes and grid.axes[-1] == "head" else grid.axes[-1]
        base, base_name = grid_baseline(grid)
        self._show(rows, columns, grid_shade(grid), base, base_name, partial_note(grid))

    def show_heads(self, table: Table) -> None:
        """A DLA table by head as a layer x head map."""
        cells = {label: v for label, v in zip(table.labels, table.values)}
        layers = sorted({int(k[1:].split("H")[0]) for k in cells if "H" in k and k.startswith("L")})
        heads = sorted({int(k.split("H")[1]) for k in cells if "H" in k and k.startswith("L")})
        rows = [(f"L{layer}", [cells[f"L{layer}H{h}"] for h in heads]) for layer in layers]
        self.corner = "head"
        scale = max((abs(v) for _, vs in rows for v in vs if finite(v)), default=1.0) or 1.0
        self._show(rows, [f"H{h}" for h in heads], lambda v: v / scale, 0.0, "zero", "")

    def clear(self, columns: bool = False) -> "Heatmap":
        """Forget the map too, so a later resize does not draw it back."""
        self._source = None
        self.hidden, self.hidden_note, self.caption = [], "", ""
        return super().clear(columns)

    def _show(self, rows: list, columns: list[str], shade, base: float, base_name: str, note: str) -> None:
        self._source = (rows, columns, shade, base, base_name, note)
        self._fit()

    def on_resize(self, event: events.Resize) -> None:
        if self._source is not None and event.size.width and event.size.width != self._fitted_width:
            self._fit()

    def _width(self) -> int:
        """The width to fit: the widget's own once laid out, else the screen's (a first draw
        while hidden behind another view)."""
        return self.size.width or self.app.size.width

    def _fit(self) -> None:
        rows, columns, shade, base, base_name, note = self._source
        width = self._fitted_width = self._width()
        label_w = max((len(label) for label, _ in rows), default=0) + 1
        room = width - label_w - SCROLLBAR
        keep = list(range(len(columns)))
        cell = _cell_width(len(keep), room)
        why = f"no change from {base_name}"
        if cell is None:
            moving = [j for j in keep if not _flat(rows, j, shade, base)]
            keep = moving or keep
            cell = _cell_width(len(keep), room)
        if cell is None:  # still too many: keep the columns that move most (hold the most attention)
            fit = max(1, room // (CELL_WIDTHS[-1] + 1))
            keep = sorted(sorted(keep, key=lambda j: -_weight(rows, j, shade, base))[:fit])
            cell = CELL_WIDTHS[-1]
            why = "the least attention" if self.corner == "key" else f"the least change from {base_name}"
        gone = [j for j in range(len(columns)) if j not in keep]
        self.hidden = [columns[j] for j in gone]
        self.hidden_note = f"{len(gone)} of {len(columns)} columns hidden ({why}): {spans(gone)}" if gone else ""
        self.caption = "; ".join(part for part in (note, self.hidden_note) if part)
        self._fill(rows, [columns[j] for j in keep], keep, shade, cell, label_w)
        self.post_message(self.Fitted(self, self.caption))

    def _fill(self, rows: list, columns: list[str], keep: list[int], shade, cell: int, label_w: int) -> None:
        DataTable.clear(self, columns=True)
        self.add_column(Text(f"{self.corner[: label_w - 2]}→" if self.corner else ""), key="label", width=label_w)
        for j, label in zip(keep, columns):
            self.add_column(Text(short_label(label, cell).rjust(cell + 1)), key=f"c{j}", width=cell + 1)
        for label, values in rows:
            cells = [Text(compact(values[j], cell).rjust(cell + 1), style=cell_style(values[j], shade)) for j in keep]
            self.add_row(Text(label.ljust(label_w)), *cells)


def spans(indices: list[int]) -> str:
    """Sorted indices as short runs: [0, 2, 3, 4, 7] -> "0, 2-4, 7" (a caption must fit a line)."""
    runs: list[list[int]] = []
    for i in indices:
        if runs and i == runs[-1][1] + 1:
            runs[-1][1] = i
        else:
            runs.append([i, i])
    return ", ".join(str(a) if a == b else f"{a}-{b}" for a, b in runs)


def _cell_width(n_columns: int, room: int) -> int | None:
    """The widest cell (plus its one-space gap) at which ``n_columns`` fit in ``room``."""
    return next((w for w in CELL_WIDTHS if n_columns * (w + 1) <= room), None)


def _weight(rows: list, j: int, shade, base: float) -> float:
    """How far column j moves from the baseline in all (an attention map's: the attention its key holds)."""
    at = shade(base)
    return sum(abs(shade(values[j]) - at) for _, values in rows if finite(values[j]))


def _flat(rows: list, j: int, shade, base: float) -> bool:
    """Column j never moves from the baseline (by more than FLAT of the colour scale)."""
    at = shade(base)
    return all(abs(shade(values[j]) - at) <= 2 * FLAT for _, values in rows if finite(values[j]))


def partial_note(grid: Grid) -> str:
    if not grid.meta.get("partial"):
        return ""
    done, total = grid.meta.get("cells_done"), grid.meta.get("cells_total")
    counts = f" after {done} of {total} cells" if done is not None and total else ""
    return f"sweep stopped{counts}: cells not computed show {BLANK}"


def fit_summary(scatter: Scatter, sep: str = "  ") -> str:
    """The scatter's OLS fit in one line, as the table's header and the plot's title quote it."""
    f = scatter.fit()
    return sep.join([f"r = {f['r']:.3f}", f"slope = {f['slope']:.3f} ± {f['slope_se']:.3f}", f"n = {f['n']}"])


def _visible(token: str) -> str:
    """A token with its whitespace control characters made visible, so it stays on its line."""
    return token.replace("\n", "↵").replace("\r", "␍").replace("\t", "→")


def token_text(result: TokenValues) -> Text:
    """Each row's label, then its tokens as [tok] (the brackets show token boundaries and leading
    spaces), each on a background coloured by its value: red positive, blue negative, scaled by
    the largest |value| of the whole result so rows compare. Built as Text, never markup."""
    scale = max((abs(v) for row in result.values for v in row if finite(v)), default=1.0) or 1.0
    text = Text()
    text.append(f"{result.value_name}: red positive, blue negative, full colour at ±{scale:.4g}\n", style="bold")
    for label, tokens, values in zip(result.labels, result.texts, result.values):
        text.append(f"\n{label}\n", style="bold")
        for token, v in zip(tokens, values):
            text.append(f"[{_visible(token)}]", style=cell_style(v, lambda x: x / scale))
        text.append("\n")
    return text


class TokenText(VerticalScroll):
    """Text coloured by a value per token (a ``TokenValues`` result), scrollable. The text is in
    the child Static ``#token_body``; ``text`` holds the rich Text on show (plain: ``text.plain``)."""

    HELP = """Tokens coloured by value: each row's label, then its tokens as [tok] (brackets mark token
boundaries; a leading space is part of the token). Red = positive, blue = negative, scaled by the
largest |value| of the whole result. Arrow keys and Page Up/Down scroll."""

    DEFAULT_CSS = "TokenText { height: 1fr; } TokenText > #token_body { width: 1fr; }"

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.text = Text()

    def compose(self) -> ComposeResult:
        yield Static(id="token_body", markup=False)

    def show(self, result: TokenValues | None) -> None:
        self.text = token_text(result) if result is not None else Text()
        self.query_one("#token_body", Static).update(self.text)


class ErrorDialog(ModalScreen[None]):
    """An error message; the app and its data stay as they were."""

    DEFAULT_CSS = """
    ErrorDialog { align: center middle; }
    ErrorDialog > Static { width: 70%; height: auto; border: thick $error; padding: 1 2; background: $surface; }
    """
    BINDINGS = [Binding("escape", "dismiss", "Close", id="close_dialog"), Binding("enter", "dismiss", "Close", show=False)]

    def __init__(self, message: str, title: str = "Error") -> None:
        super().__init__()
        self.message, self.heading = message, title

    def compose(self) -> ComposeResult:
        # A Text, not markup: messages name tokens such as [BOS] that markup would swallow.
        yield Static(Text.assemble((self.heading, "bold"), f"\n\n{self.message}\n\n(Escape or Enter to close)"))

    def action_dismiss(self) -> None:
        self.dismiss()
