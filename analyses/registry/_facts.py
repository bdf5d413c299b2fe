"""Pieces the declarations' ``headline`` functions share: a result's top row, a grid's extreme
cell, the pairs it ran on, a list of names that fits a line. Plain data in, short text out (no
torch), so the CLI, the TUI's result header and the history all say the same thing."""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from analyses.report import number

NAMES_SHOWN = 8  # a list of names longer than this ends in "(+N more)"


def num(v: Any, decimals: int = 3, kind: str = "value", sign: bool = True) -> str:
    return number(v, kind, decimals, sign)


def rate(v: Any) -> str:
    """An accuracy or share: unsigned, three decimals."""
    return number(v, "value", 3, sign=False)


def names(items: Sequence[Any], limit: int = NAMES_SHOWN) -> str:
    """ "L1H0, L1H2 (+3 more)"; "none" for an empty list."""
    items = [str(x) for x in items]
    if not items:
        return "none"
    more = f" (+{len(items) - limit} more)" if len(items) > limit else ""
    return ", ".join(items[:limit]) + more


def _finite(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool) and math.isfinite(v)


def top_row(table: Any, column: str | None = None, largest: bool = False) -> tuple[str, Any] | None:
    """(label, value) of the row with the largest |value| (or the largest value when
    ``largest``) in ``column`` (default the main one); None when no row has a number."""
    values = table.columns[column] if column else table.values
    rows = [(lab, v) for lab, v in zip(table.labels, values) if _finite(v)]
    if not rows:
        return None
    return max(rows, key=(lambda r: r[1]) if largest else (lambda r: abs(r[1])))


def data_source(meta: dict[str, Any]) -> str:
    """What a pairs analysis ran on: "4 pairs (task ioi)"."""
    n = meta.get("n_pairs")
    data = meta.get("data")
    text = f"{n} pair{'s' * (n != 1)}" if isinstance(n, int) else ""
    return f"{text} ({data})" if text and data else text or str(data or "")


def baselines(meta: dict[str, Any], clean: str = "clean", corrupt: str = "corrupt") -> str:
    """ "metric logit_diff: clean +8.582, corrupt -8.281" (the two ends of a patching metric)."""
    metric = meta.get("metric")
    head = f"metric {metric}: " if metric else ""
    return f"{head}clean {num(meta.get(clean))}, corrupt {num(meta.get(corrupt))}"


def grid_cells(grid: Any) -> list[tuple[str, float]]:
    """Every finite cell of a grid as ("label of each axis", value)."""
    out: list[tuple[str, float]] = []

    def walk(values: Any, depth: int, label: list[str]) -> None:
        if depth == len(grid.axes):
            if _finite(values):
                out.append((" ".join(label), float(values)))
            return
        for i, v in enumerate(values):
            name = str(grid.labels[grid.axes[depth]][i])
            named = name if any(c.isalpha() for c in name) else f"{grid.axes[depth]}={name}"  # "w02=0", not "0"
            walk(v, depth + 1, [*label, named])

    walk(grid.values, 0, [])
    return out


def grid_extreme(grid: Any, base: float = 0.0, lowest: bool = False) -> tuple[str, float] | None:
    """The cell farthest from ``base`` (or the lowest one when ``lowest``); None for an empty grid."""
    cells = grid_cells(grid)
    if not cells:
        return None
    if lowest:
        return min(cells, key=lambda c: c[1])
    return max(cells, key=lambda c: abs(c[1] - base))
