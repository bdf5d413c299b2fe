"""Results to files an analyst takes elsewhere: JSON (the same object ``--json`` prints) and CSV."""

from __future__ import annotations

import csv
import itertools
import json
from pathlib import Path

from analyses.results import Grid, Table


def export(result: Table | Grid, stem: str | Path) -> tuple[Path, Path]:
    """Write ``stem.json`` and ``stem.csv``; returns both paths."""
    stem = Path(stem)
    json_path, csv_path = stem.with_suffix(".json"), stem.with_suffix(".csv")
    json_path.write_text(json.dumps(result.to_json(), indent=1))
    with csv_path.open("w", newline="") as f:
        writer = csv.writer(f)
        if isinstance(result, Table):
            writer.writerow(["label", *result.columns])
            for row in result.rows():
                writer.writerow([row["label"], *(row[c] for c in result.columns)])
        else:  # one row per cell, with each axis's label
            writer.writerow([*result.axes, "value"])
            for idx in itertools.product(*(range(len(result.labels[a])) for a in result.axes)):
                value = result.values
                for i in idx:
                    value = value[i]
                writer.writerow([*(result.labels[a][i] for a, i in zip(result.axes, idx)), value])
    return json_path, csv_path
