"""Results as the readable text `workbench run` prints without ``--json``.

Every result opens with what it found (its declaration's headline facts), then its rows. Numbers
print by kind (``analyses.report``): counts as whole numbers, p-values in scientific notation, a
missing number as ``n/a``.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from analyses.report import column_kind, number
from analyses.results import Grid, Scatter, Series, Table, TokenValues

TEXT_ROW_LIMIT = 60  # above this many rows, text output shows the largest by default
TOP_BY_DEFAULT = 30
CELL = 12  # width of a table cell


def format_result(result: Any, top: int | None = None, info: dict | None = None, facts: Sequence[str] = (),
                  top_option: bool = True) -> str:
    """Any result as readable text: the model, the tokens, the edits in force and ``facts`` first.
    ``top``: the K rows of largest magnitude (0: all; None: all up to TEXT_ROW_LIMIT rows);
    ``top_option``: whether ``--top`` is the CLI's row option (else the analysis's own ``--top``
    means something else, and the hint on hidden rows points to ``--json``)."""
    lines = header(result.meta, info, facts)
    if isinstance(result, Grid):
        body = format_grid(result)
    elif isinstance(result, Table):
        body = format_table(result, top, top_option)
    elif isinstance(result, Scatter):
        body = format_scatter(result)
    elif isinstance(result, Series):
        body = format_series(result)
    elif isinstance(result, TokenValues):
        body = [f"{label}: " + " ".join(f"[{t}]{number(v, decimals=3)}" for t, v in zip(toks, vals))
                for label, toks, vals in zip(result.labels, result.texts, result.values)]
    else:
        raise TypeError(f"{type(result).__name__} has no text form")
    return "\n".join(lines + body)


def header(meta: dict[str, Any], info: dict | None, facts: Sequence[str]) -> list[str]:
    """The lines above a result: model, tokens, edits, and what it found."""
    lines = []
    if info:
        from analyses.parity import parity_text

        parity = f", {parity_text(info['parity'])}" if "parity" in info else ""
        lines.append(f"model   {info['spec']} ({info['model_type']}, {info['dtype']}, {info['device']}{parity})")
    if "prompt_tokens" in meta:
        lines.append("tokens  " + " ".join(f"[{t}]" for t in meta["prompt_tokens"]))
    if meta.get("edits"):
        lines.append(f"edits   {' '.join(meta['edits'])}")
    for i, fact in enumerate(facts):
        lines.append(f"{'found' if i == 0 else '':<8}{fact}")
    return lines


def format_grid(grid: Grid) -> list[str]:
    """A grid: one line per layer (and head), one column per position; the grid's other scalar
    facts (a composition grid's mode, fold, baseline) on a line above."""
    meta = grid.meta
    if not ("clean" in meta and "corrupt" in meta):  # a patching grid's baselines are in its facts
        facts = [f"{k} {v:.4g}" if isinstance(v, float) else f"{k} {v}" for k, v in meta.items()
                 if isinstance(v, (str, int, float)) and not isinstance(v, bool) and k != "edits"]
        lines = [f"{grid.analysis}  " + "  ".join(facts)]
    else:
        lines = []
    rows: list[tuple[str, list[float]]] = []
    if grid.axes[-1] == "head" and "pos" in grid.axes:  # layer x pos x head: a row per (layer, head)
        for li, layer in enumerate(grid.values):
            for hi, head in enumerate(grid.labels["head"]):
                rows.append((f"{grid.labels['layer'][li]}{head}", [cell[hi] for cell in layer]))
        columns = grid.labels["pos"]
    elif len(grid.axes) == 2:
        rows = list(zip(grid.labels[grid.axes[0]], grid.values))
        columns = grid.labels[grid.axes[1]]
    else:
        rows = [(label, [v]) for label, v in zip(grid.labels[grid.axes[0]], grid.values)]
        columns = ["value"]
    width = max(len(r[0]) for r in rows)
    lines.append(" " * width + "  " + " ".join(f"{c[:9]:>9}" for c in columns))
    for label, values in rows:
        lines.append(f"{label:<{width}}  " + " ".join(f"{number(v, decimals=3):>9}" for v in values))
    return lines


def format_table(table: Table, top: int | None, top_option: bool = True) -> list[str]:
    """An aligned table; a large one shows its largest rows and says how to see the rest."""
    n = len(table.labels)
    if top is None and n > TEXT_ROW_LIMIT:
        top = TOP_BY_DEFAULT
    shown = sorted(table.top(top)) if top else range(n)
    names = list(table.columns)
    kinds = {c: column_kind(c, table.columns[c]) for c in names}
    width = max([5] + [len(table.labels[i]) for i in shown])
    lines = ["", f"{'label':<{width}}  " + "  ".join(f"{c:>{CELL}}" for c in names)]
    for i in shown:
        cells = [f"{number(table.columns[c][i], kinds[c], 6):>{CELL}}" for c in names]
        lines.append(f"{table.labels[i]:<{width}}  " + "  ".join(cells))
    if top and n > len(shown):
        every = "--top 0 or --json" if top_option else "--json"
        lines.append(f"... {n - len(shown)} more rows (largest |value| shown; {every} for all)")
    return lines


def format_scatter(scatter: Scatter) -> list[str]:
    fit = scatter.fit()
    lines = [f"{scatter.analysis}: {scatter.y_name} against {scatter.x_name}, n = {fit['n']}: "
             f"r = {number(fit['r'])}, slope = {number(fit['slope'])} ± {number(fit['slope_se'], sign=False)}, "
             f"intercept {number(fit['intercept'])}"]
    return lines + [f"{lab:<16} {number(x, decimals=6):>12} {number(y, decimals=6):>12}"
                    for lab, x, y in zip(scatter.labels, scatter.x, scatter.y)]


def format_series(series: Series) -> list[str]:
    names = list(series.lines)
    kinds = {n: column_kind(n, series.lines[n]) for n in names}
    lines = [f"{series.x_name:>10}  " + "  ".join(f"{n:>22}" for n in names)]
    for i, x in enumerate(series.x):
        lines.append(f"{x!s:>10}  " + "  ".join(f"{number(series.lines[n][i], kinds[n], 6):>22}" for n in names))
    return lines
