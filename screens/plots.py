"""Plots of any result (plotext through textual-plotext): bar, line and scatter plots of tables,
heatmaps, bars and lines of grids. ``p`` cycles through the kinds a result allows."""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual_plotext import PlotextPlot

from analyses.results import Grid, Table
from screens.widgets import diverging_rgb, grid_rows, grid_shade

MAX_LINES = 8


def numeric_columns(table: Table) -> list[str]:
    return [c for c, v in table.columns.items() if v and all(isinstance(x, (int, float)) for x in v)]


def plot_kinds(result: Table | Grid, partner: Grid | None = None) -> list[str]:
    """The plots a result allows, its natural one first; a grid scatters against a partner grid
    of the same cells (another method or direction on the same site)."""
    if isinstance(result, Grid):
        return ["heatmap", "bar", "line"] + (["scatter"] if partner is not None else [])
    numeric = numeric_columns(result)
    if not numeric:
        return []
    kinds = ["line", "bar"] if result.analysis == "logit_lens" else ["bar", "line"]
    return kinds + (["scatter"] if len(numeric) >= 2 else [])


class ResultPlot(PlotextPlot):
    """The result on show, plotted. Tables: bar (top by |value|), line (in row order), scatter
    (the second numeric column against the first). Grids: heatmap, bar (each row's largest
    effect), line (each row over the last axis)."""

    HELP = """### Plot
The result on show, as a chart. **p** cycles the kinds this result allows:
bar, line and scatter for tables; heatmap, bar and line for patching grids, and
a scatter against the session's latest other grid over the same cells (say,
attribution patching against activation patching of the same site), with r.
Bars keep as many of the largest rows by magnitude as fit; the tables hold every row."""
    BINDINGS = [Binding("p", "cycle_kind", "Plot kind", id="plot_kind")]

    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: Table | Grid | None = None
        self.kind: str | None = None
        self.partner: tuple[str, Grid] | None = None

    def show(self, result: Table | Grid | None, kind: str | None = None,
             partner: tuple[str, Grid] | None = None) -> None:
        """Plot ``result``; ``partner`` (a name and a grid over the same cells) adds a scatter of
        the two, such as attribution patching against exact patching."""
        self.partner = partner
        kinds = plot_kinds(result, partner and partner[1]) if result is not None else []
        self.result = result
        self.kind = kind if kind in kinds else (kinds[0] if kinds else None)
        self.draw()

    def action_cycle_kind(self) -> None:
        if self.result is None or self.kind is None:
            return
        kinds = plot_kinds(self.result, self.partner and self.partner[1])
        self.show(self.result, kinds[(kinds.index(self.kind) + 1) % len(kinds)], self.partner)

    def render(self) -> RenderResult:
        result, kind, width = self.result, self.kind, self.size.width
        if isinstance(result, Grid) and kind == "heatmap":
            return heatmap_text(result, width)
        if kind == "bar":
            labels, values, title = _bars(result)
            return bar_text(labels, values, width, max(1, self.size.height - 1), title)
        return super().render()

    def draw(self) -> None:
        """Line and scatter plots go through plotext; bars and heatmaps are drawn as text."""
        plt = self.plt
        plt.clear_figure()
        result, kind = self.result, self.kind
        if result is None or kind is None:
            plt.title("nothing to plot yet: run an analysis")
        elif isinstance(result, Grid) and kind == "line":
            rows, columns = grid_rows(result)
            base = result.meta.get("corrupt", 0.0)
            strongest = sorted(rows, key=lambda r: -max(abs(v - base) for v in r[1]))[:MAX_LINES]
            xs = list(range(len(columns)))
            for label, values in strongest:
                plt.plot(xs, values, label=label, marker="braille")
            plt.xticks(*_ticks(xs, columns))
            plt.title(f"{_what(result)}: the {len(strongest)} strongest rows")
        elif isinstance(result, Grid) and kind == "scatter" and self.partner is not None:
            name, other = self.partner
            xs, ys = _flat(other.values), _flat(result.values)
            plt.scatter(xs, ys, marker="dot")
            plt.xlabel(name)
            plt.ylabel(f"this run ({result.analysis})")
            plt.title(f"{_what(result)} against {name}: Pearson r = {pearson(xs, ys):.3f}, {len(xs)} cells")
        elif isinstance(result, Table) and kind == "line":
            values = result.columns[numeric_columns(result)[0]]
            xs = list(range(len(values)))
            plt.plot(xs, values, marker="braille")
            plt.xticks(*_ticks(xs, result.labels))
            plt.hline(0.0)
            plt.title(f"{result.analysis}: {numeric_columns(result)[0]} by row")
        elif isinstance(result, Table) and kind == "scatter":
            y_name, x_name = numeric_columns(result)[:2]
            plt.scatter(result.columns[x_name], result.columns[y_name], marker="dot")
            plt.xlabel(x_name)
            plt.ylabel(y_name)
            plt.title(f"{result.analysis}: {y_name} against {x_name}")
        self.refresh()


def _flat(values) -> list[float]:
    return [x for v in values for x in _flat(v)] if isinstance(values, list) else [float(values)]


def pearson(xs: list[float], ys: list[float]) -> float:
    """The correlation of two equally long lists (0 when either is constant)."""
    n = len(xs)
    mx, my = sum(xs) / n, sum(ys) / n
    sxy = sum((x - mx) * (y - my) for x, y in zip(xs, ys))
    sxx, syy = sum((x - mx) ** 2 for x in xs), sum((y - my) ** 2 for y in ys)
    return sxy / (sxx * syy) ** 0.5 if sxx > 0 and syy > 0 else 0.0


def _what(grid: Grid) -> str:
    return f"{grid.analysis} {grid.meta.get('site', '')}: {grid.meta.get('metric', 'value')}"


def _bars(result: Table | Grid) -> tuple[list[str], list[float], str]:
    """What a bar chart of a result shows: a table's main value; a grid row's largest change from
    the corrupted run (so bars show effects, not raw metric values)."""
    if isinstance(result, Table):
        main = numeric_columns(result)[0]
        return result.labels, result.columns[main], f"{result.analysis}: {main}"
    rows, _ = grid_rows(result)
    base = result.meta.get("corrupt", 0.0)
    peaks = [max((v - base for v in values), key=abs) for _, values in rows]
    return [label for label, _ in rows], peaks, f"{_what(result)}: each row's largest change from the corrupted run"


def bar_text(labels: list[str], values: list[float], width: int, height: int, title: str) -> Text:
    """Horizontal bars from a zero line, red right (positive), blue left (negative), the value
    printed beside each; the rows with the largest magnitude when not all fit, in their order."""
    keep = max(1, min(len(values), height - 1))
    order = sorted(sorted(range(len(values)), key=lambda i: -abs(values[i]))[:keep])
    shown = f"{title}" + (f"   (the {keep} largest of {len(values)})" if keep < len(values) else "")
    text = Text()
    text.append(shown[:width] + "\n", style="bold")
    label_w = max(len(labels[i]) for i in order) + 1
    lo = min(0.0, min(values[i] for i in order))
    hi = max(0.0, max(values[i] for i in order))
    span = (hi - lo) or 1.0
    area = max(4, width - label_w - 11)
    zero = round(area * -lo / span)
    for i in order:
        v = values[i]
        cells = round(area * abs(v) / span)
        start = zero - cells if v < 0 else zero
        text.append(labels[i].rjust(label_w - 1) + " ")
        text.append(" " * start)
        text.append("█" * cells, style="#5f87ff" if v < 0 else "#ff5f5f")
        text.append(" " * (area - start - cells))
        text.append(f" {v:+.4f}\n")
    return text


def heatmap_text(grid: Grid, width: int) -> Text:
    """A grid as blocks of colour, one terminal row per grid row, cells as wide as fit: plotext's
    matrix plot draws a dot per cell, which reads poorly at terminal resolution."""
    rows, columns = grid_rows(grid)
    shade = grid_shade(grid)
    label_w = max(len(label) for label, _ in rows) + 1
    cell = max(1, min(8, (width - label_w) // max(1, len(columns))))
    text = Text()
    text.append(f"{_what(grid)}   blue: corrupted run, red: clean run\n", style="bold")
    header = "".join(c.split(":", 1)[-1][: cell - 1].ljust(cell) for c in columns)
    text.append(" " * label_w + header + "\n")
    for label, values in rows:
        text.append(label.ljust(label_w))
        for v in values:
            text.append(" " * cell, style=Style(bgcolor=Color.from_rgb(*diverging_rgb(shade(v)))))
        text.append("\n")
    return text


def _ticks(xs: list, labels: list[str], most: int = 12) -> tuple[list, list[str]]:
    """At most ``most`` evenly spaced tick labels, so they stay readable."""
    step = max(1, -(-len(xs) // most))
    return xs[::step], [str(label)[:10] for label in labels[::step]]
