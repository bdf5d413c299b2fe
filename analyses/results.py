"""Result types: one per shape of result, not per analysis. The CLI prints them, ``--json``
serialises them, screens render them and sessions store them."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any


@dataclass
class Table:
    """Labelled rows. ``columns`` maps a column name to one value per row (numbers or text);
    the first column is the row's main value. ``meta`` holds run-level facts (tokens, logit)."""

    analysis: str
    labels: list[str]
    columns: dict[str, list[Any]]
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, col in self.columns.items():
            if len(col) != len(self.labels):
                raise ValueError(f"column {name!r} has {len(col)} values for {len(self.labels)} rows")

    @property
    def values(self) -> list[Any]:
        return next(iter(self.columns.values()))

    def rows(self) -> list[dict[str, Any]]:
        return [
            {"label": label, **{name: col[i] for name, col in self.columns.items()}}
            for i, label in enumerate(self.labels)
        ]

    def to_json(self) -> dict[str, Any]:
        return {"analysis": self.analysis, **self.meta, "rows": self.rows()}

    def top(self, k: int) -> list[int]:
        """Row indices of the k largest main values by magnitude."""
        order = sorted(range(len(self.labels)), key=lambda i: -abs(self.values[i]))
        return order[:k]


@dataclass
class Grid:
    """Values on named axes (layer x pos x head ...), with a label for every index of every axis.

    ``values`` is nested lists (rows of the first axis); ``meta`` holds run-level facts
    (metric, clean and corrupted baselines, tokens).
    """

    analysis: str
    axes: list[str]
    labels: dict[str, list[str]]
    values: list
    meta: dict[str, Any] = field(default_factory=dict)

    def to_json(self) -> dict[str, Any]:
        return {"analysis": self.analysis, **self.meta, "grid": self.values, "axes": self.axes, "axis_labels": self.labels}
