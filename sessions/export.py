"""Results to files an analyst takes elsewhere: JSON (the result as ``--json`` prints it, with the
model and the parameters that produced it) and CSV (one flat table per result type).

Files are named after the run (``workbench-run12-patch.json``), never after a count that changes,
and an export never replaces an earlier one: a taken name gets ``-2``, ``-3``, ... on both files.
"""

from __future__ import annotations

import csv
import itertools
import re
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any

from analyses.report import dumps
from analyses.results import Grid, Result, Scatter, Series, Table, TokenValues


def export_run(result: Result, folder: str | Path, *, analysis: str, params: dict[str, Any],
               model: dict[str, Any], run_id: int | None = None) -> tuple[Path, Path]:
    """Write the run as a new JSON and CSV pair in ``folder``; returns (json path, csv path). The
    JSON is strict (NaN and infinities as null) and carries what the run found ("headline")."""
    from analyses.registry import analyses

    declared = analyses().get(analysis)
    document = {"model": model, "analysis": analysis, "run_id": run_id, "params": params, "result": result.to_json(),
                "headline": declared.facts(result) if declared is not None else []}
    stem = f"workbench-run{run_id}-{_safe(analysis)}" if run_id is not None else f"workbench-unsaved-{_safe(analysis)}"
    json_path, csv_path, json_file, csv_file = _claim(Path(folder), stem)
    with json_file, csv_file:
        json_file.write(dumps(document, indent=1))
        write_csv(result, csv_file)
    return json_path, csv_path


def _safe(name: str) -> str:
    """An analysis name as a file-name part (no separators or odd characters)."""
    return re.sub(r"[^A-Za-z0-9_.-]+", "_", name) or "result"


def _claim(folder: Path, stem: str) -> tuple[Path, Path, IO[str], IO[str]]:
    """Create (exclusively, so a concurrent export cannot take it too) the first free pair
    ``stem[-n].json`` / ``stem[-n].csv``; both files share one stem."""
    for n in itertools.count(1):
        base = stem if n == 1 else f"{stem}-{n}"
        json_path, csv_path = folder / f"{base}.json", folder / f"{base}.csv"
        try:
            json_file = json_path.open("x", encoding="utf-8")
        except FileExistsError:
            continue
        try:
            csv_file = csv_path.open("x", newline="", encoding="utf-8")
        except FileExistsError:
            json_file.close()
            json_path.unlink()
            continue
        return json_path, csv_path, json_file, csv_file
    raise AssertionError("unreachable")


def write_csv(result: Result, f: IO[str]) -> None:
    """The result as one flat table: a header, then one row per row, cell, point, x or token."""
    writer = csv.writer(f)
    header, rows = _csv(result)
    writer.writerow(header)
    writer.writerows(rows)


def _csv(result: Result) -> tuple[list[str], Iterator[list[Any]]]:
    if isinstance(result, Table):
        names = list(result.columns)
        return ["label", *names], ([row["label"], *(row[c] for c in names)] for row in result.rows())
    if isinstance(result, Grid):
        return [*result.axes, "value"], _grid_rows(result)
    if isinstance(result, Scatter):
        return ["label", result.x_name, result.y_name], (list(p) for p in zip(result.labels, result.x, result.y))
    if isinstance(result, Series):
        lines = list(result.lines.values())
        return [result.x_name, *result.lines], ([x, *(ys[i] for ys in lines)] for i, x in enumerate(result.x))
    if isinstance(result, TokenValues):
        return ["label", "pos", "token", result.value_name], _token_rows(result)
    raise TypeError(f"{type(result).__name__} has no CSV form")


def _grid_rows(grid: Grid) -> Iterator[list[Any]]:
    """One row per cell, with each axis's label."""
    for idx in itertools.product(*(range(len(grid.labels[a])) for a in grid.axes)):
        value = grid.values
        for i in idx:
            value = value[i]
        yield [*(grid.labels[a][i] for a, i in zip(grid.axes, idx)), value]


def _token_rows(tv: TokenValues) -> Iterator[list[Any]]:
    for label, tokens, values in zip(tv.labels, tv.texts, tv.values):
        for pos, (token, value) in enumerate(zip(tokens, values)):
            yield [label, pos, token, value]
