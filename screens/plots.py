"""Plots of any result (plotext through textual-plotext): bar, line and scatter plots of tables,
heatmaps, bars and lines of grids, a scatter's points with its fitted line, a series' lines, a
text's values per token. ``p`` cycles through the kinds a result allows.

Footer note ("^p palettet" on the Plot tab): the app's own footer keys fill exactly the 69 columns
an 80-column footer leaves beside the right-docked "^p palette" key, so any key of the focused
widget overflows the footer; the docked key then covers the last keys and, overflowing by 12
("p Plot kind"), sits one column short of the edge, leaving Quit's "t" after "palette". The
widget's description is now one word ("Kind"); the room itself is the app's footer to give."""

from __future__ import annotations

from rich.color import Color
from rich.style import Style
from rich.text import Text
from textual.app import RenderResult
from textual.binding import Binding
from textual_plotext import PlotextPlot

from analyses.results import Grid, Result, Scatter, Series, Table, TokenValues
from screens.widgets import BLANK, diverging_rgb, finite, fit_summary, grid_baseline, grid_rows, grid_shade

MAX_LINES = 8
# plotext centres a title on the canvas (right of the y tick labels) and drops one that overflows
# either side, so a title is cut to the width less twice the widest tick labels' room.
TITLE_MARGIN = 16


def numeric_columns(table: Table) -> list[str]:
    return [c for c, v in table.columns.items() if v and all(isinstance(x, (int, float)) for x in v)]


def is_ordered(table: Table) -> bool:
    """Whether a table's rows lie along an axis (so a line may join them): ``meta["ordered"]``
    when the analysis sets it, else only the logit lens (rows are layers; sessions stored before
    the flag). DLA rows (embed, L0H0, ..., bias) are categories: joining them draws a false trend."""
    return bool(table.meta.get("ordered", table.analysis == "logit_lens"))


def plot_kinds(result: Result, partner: Grid | None = None) -> list[str]:
    """The plots a result allows, its natural one first; a grid scatters against a partner grid
    of the same cells (another method or direction on the same site)."""
    if isinstance(result, Grid):
        return ["heatmap", "bar", "line"] + (["scatter"] if partner is not None else [])
    if isinstance(result, Scatter):
        return ["scatter"] if result.x else []
    if isinstance(result, Series):
        return ["line", "bar"] if result.x and result.lines else []
    if isinstance(result, TokenValues):
        return ["bar"] if result.texts and result.texts[0] else []
    numeric = numeric_columns(result)
    if not numeric:
        return []
    return (["line"] if is_ordered(result) else []) + ["bar"] + (["scatter"] if len(numeric) >= 2 else [])


class ResultPlot(PlotextPlot):
    """The result on show, plotted. Tables: bar (top by |value|), line (in row order, ordered
    tables only: see ``is_ordered``), scatter (the second numeric column against the first).
    Grids: heatmap, bar (each row's largest effect), line (each row over the last axis).
    Scatters: the points with their OLS line, the fit in the title. Series: every line with a
    legend, or bars of the last line. Token values: bars of the first row's tokens."""

    HELP = """### Plot
The result on show, as a chart. **p** cycles the kinds this result allows:
bar, scatter, and line when rows are ordered (the logit lens's layers) for tables;
heatmap, bar and line for patching grids, and
a scatter against the session's latest other grid over the same cells (say,
attribution patching against activation patching of the same site), with r.
A scatter result shows its fitted line, r and the slope ± its standard error; a series
its lines (or bars of the last); token values bars of the first text's tokens.
Bars keep as many of the largest rows by magnitude as fit; the tables hold every row."""
    # One word: at 80 columns the footer has no room to spare (see the module's footer note).
    BINDINGS = [Binding("p", "cycle_kind", "Kind", id="plot_kind",
                        tooltip="cycle the plot kind: bar, line, scatter, heatmap")]

    can_focus = True

    def __init__(self, **kwargs) -> None:
        super().__init__(**kwargs)
        self.result: Result | None = None
        self.kind: str | None = None
        self.partner: tuple[str, Grid] | None = None
        self.title = ""  # of a plotext plot (line, scatter); bars and heatmaps carry their own

    def show(self, result: Result | None, kind: str | None = None,
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
        self.plt.title(_cut(self.title, width - TITLE_MARGIN))
        return super().render()

    def draw(self) -> None:
        """Line and scatter plots go through plotext; bars and heatmaps are drawn as text."""
        plt = self.plt
        plt.clear_figure()
        result, kind = self.result, self.kind
        title = ""
        if result is None or kind is None:
            title = "nothing to plot yet: run an analysis"
        elif isinstance(result, Grid) and kind == "line":
            rows, columns = grid_rows(result)
            base, _ = grid_baseline(result)
            strongest = sorted(rows, key=lambda r: -_peak(r[1], base))[:MAX_LINES]
            xs = list(range(len(columns)))
            for label, values in strongest:
                kept = [(x, v) for x, v in zip(xs, values) if finite(v)]  # a cancelled sweep's NaN cells
                if kept:
                    plt.plot(*zip(*kept), label=label, marker="braille")
            plt.xticks(*_ticks(xs, columns))
            title = f"{_what(result)}: the {len(strongest)} strongest rows"
        elif isinstance(result, Grid) and kind == "scatter" and self.partner is not None:
            name, other = self.partner
            pairs = [(x, y) for x, y in zip(_flat(other.values), _flat(result.values)) if finite(x) and finite(y)]
            xs, ys = [x for x, _ in pairs], [y for _, y in pairs]
            plt.scatter(xs, ys, marker="dot")
            plt.xlabel(name)
            plt.ylabel(f"this run ({result.analysis})")
            title = f"Pearson r = {pearson(xs, ys):.3f}, {len(xs)} cells: {_what(result)} against {name}"
        elif isinstance(result, Table) and kind == "line":
            values = result.columns[numeric_columns(result)[0]]
            xs = list(range(len(values)))
            plt.plot(xs, values, marker="braille")
            plt.xticks(*_ticks(xs, result.labels))
            plt.hline(0.0)
            title = f"{result.analysis}: {numeric_columns(result)[0]} by row"
        elif isinstance(result, Table) and kind == "scatter":
            y_name, x_name = numeric_columns(result)[:2]
            plt.scatter(result.columns[x_name], result.columns[y_name], marker="dot")
            plt.xlabel(x_name)
            plt.ylabel(y_name)
            title = f"{result.analysis}: {y_name} against {x_name}"
        elif isinstance(result, Scatter):
            title = _draw_scatter(plt, result)
        elif isinstance(result, Series):
            title = _draw_series(plt, result)
        self.title = title
        self.refresh()


def _draw_scatter(plt, scatter: Scatter) -> str:
    """The points, the OLS line through them, and the fit in the title (the numbers the table
    view's header quotes)."""
    plt.scatter(scatter.x, scatter.y, marker="dot")
    fit = scatter.fit()
    if finite(fit["slope"]) and finite(fit["intercept"]):
        ends = [min(scatter.x), max(scatter.x)]
        plt.plot(ends, [fit["intercept"] + fit["slope"] * x for x in ends], marker="braille", color="red")
    plt.xlabel(scatter.x_name)
    plt.ylabel(scatter.y_name)
    return f"{fit_summary(scatter, ', ')}   ({scatter.analysis}: {scatter.y_name} against {scatter.x_name})"


def _draw_series(plt, series: Series) -> str:
    """Every line over the shared x, with a legend; a text x axis (task variants, say) as ticks."""
    numeric = all(isinstance(x, (int, float)) for x in series.x)
    xs = list(series.x) if numeric else list(range(len(series.x)))
    for name, ys in series.lines.items():
        kept = [(x, y) for x, y in zip(xs, ys) if finite(y)]
        if kept:
            plt.plot(*zip(*kept), label=name, marker="braille")
    if not numeric:
        plt.xticks(*_ticks(xs, [str(x) for x in series.x]))
    plt.xlabel(series.x_name)
    return f"{series.analysis}: {', '.join(series.lines)} against {series.x_name}"


def _peak(values: list[float], base: float) -> float:
    """A row's largest change from the baseline over its computed cells (0 when none is)."""
    return max((abs(v - base) for v in values if finite(v)), default=0.0)


def _cut(text: str, width: int) -> str:
    return text if len(text) <= width else text[: max(0, width - 1)] + "…"


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


def _bars(result: Result) -> tuple[list[str], list[float], str]:
    """What a bar chart of a result shows: a table's main value; a grid row's largest change from
    the run it patches into (so bars show effects, not raw metric values); a series' last line;
    the first text's value per token. Missing (NaN) values are left out."""
    if isinstance(result, Table):
        main = numeric_columns(result)[0]
        pairs, title = zip(result.labels, result.columns[main]), f"{result.analysis}: {main}"
    elif isinstance(result, Series):
        name = list(result.lines)[-1]
        pairs = zip([str(x) for x in result.x], result.lines[name])
        title = f"{result.analysis}: {name} by {result.x_name}"
    elif isinstance(result, TokenValues):
        tokens = [f"{i} [{t}]" for i, t in enumerate(result.texts[0])]
        pairs, title = zip(tokens, result.values[0]), f"{result.analysis}: {result.value_name} over {result.labels[0]}"
    else:
        rows, _ = grid_rows(result)
        base, base_name = grid_baseline(result)
        pairs = [(label, max((v - base for v in vs if finite(v)), key=abs))
                 for label, vs in rows if any(finite(v) for v in vs)]
        title = f"{_what(result)}: each row's largest change from {base_name}"
    kept = [(label, v) for label, v in pairs if finite(v)]
    return [label for label, _ in kept], [v for _, v in kept], title


def bar_text(labels: list[str], values: list[float], width: int, height: int, title: str) -> Text:
    """Horizontal bars from a zero line, red right (positive), blue left (negative), the value
    printed beside each; the rows with the largest magnitude when not all fit, in their order."""
    if not values:
        return Text(f"{title}\n(no values to draw)")
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
            if finite(v):
                text.append(" " * cell, style=Style(bgcolor=Color.from_rgb(*diverging_rgb(shade(v)))))
            else:  # not computed (a cancelled sweep): no colour
                text.append(BLANK.center(cell), style="dim")
        text.append("\n")
    return text


def _ticks(xs: list, labels: list[str], most: int = 12) -> tuple[list, list[str]]:
    """At most ``most`` evenly spaced tick labels, so they stay readable."""
    step = max(1, -(-len(xs) // most))
    return xs[::step], [str(label)[:10] for label in labels[::step]]
