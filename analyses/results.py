"""Result types: one per shape of result, not per analysis. The CLI prints them, ``--json``
serialises them, screens render them and sessions store them."""

from __future__ import annotations

import math
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


@dataclass
class Scatter:
    """Points (x, y), one label each, with an ordinary-least-squares fit: a writer's DLA against
    its erasers', attribution against exact patching. ``fit()`` gives Pearson r, the slope and
    intercept and the slope's standard error, so the number quoted is the number plotted."""

    analysis: str
    labels: list[str]
    x: list[float]
    y: list[float]
    x_name: str = "x"
    y_name: str = "y"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.labels) == len(self.x) == len(self.y):
            raise ValueError(f"{len(self.labels)} labels for {len(self.x)} x and {len(self.y)} y values")

    def fit(self) -> dict[str, float]:
        """Pearson r, OLS slope and intercept of y on x, and the slope's standard error
        (``sqrt(SSR / (n - 2) / Sxx)``); NaN where the data cannot give them."""
        n = len(self.x)
        nan = float("nan")
        if n < 2:
            return {"n": n, "r": nan, "slope": nan, "intercept": nan, "slope_se": nan}
        mx, my = sum(self.x) / n, sum(self.y) / n
        sxx = sum((a - mx) ** 2 for a in self.x)
        syy = sum((b - my) ** 2 for b in self.y)
        sxy = sum((a - mx) * (b - my) for a, b in zip(self.x, self.y))
        slope = sxy / sxx if sxx > 0 else nan
        intercept = my - slope * mx if sxx > 0 else nan
        r = sxy / math.sqrt(sxx * syy) if sxx > 0 and syy > 0 else nan
        if n > 2 and sxx > 0:
            ssr = max(syy - slope * sxy, 0.0)
            slope_se = math.sqrt(ssr / (n - 2) / sxx)
        else:
            slope_se = nan
        return {"n": n, "r": r, "slope": slope, "intercept": intercept, "slope_se": slope_se}

    def to_json(self) -> dict[str, Any]:
        points = [{"label": lab, "x": a, "y": b} for lab, a, b in zip(self.labels, self.x, self.y)]
        return {"analysis": self.analysis, **self.meta, "x_name": self.x_name, "y_name": self.y_name,
                "fit": self.fit(), "points": points}


@dataclass
class Series:
    """One or more named lines over a shared x axis: faithfulness against the number of edges
    kept, accuracy against list length, a metric per layer."""

    analysis: str
    x: list[Any]
    lines: dict[str, list[float]]
    x_name: str = "x"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for name, ys in self.lines.items():
            if len(ys) != len(self.x):
                raise ValueError(f"line {name!r} has {len(ys)} values for {len(self.x)} x values")

    def to_json(self) -> dict[str, Any]:
        return {"analysis": self.analysis, **self.meta, "x_name": self.x_name, "x": self.x, "lines": self.lines}


@dataclass
class TokenValues:
    """Values per token of one or more texts, for colouring text by an activation: a neuron's
    top-activating prompts, a head's attribution per position. ``texts[i]`` are the tokens of
    row ``labels[i]`` and ``values[i]`` one number per token."""

    analysis: str
    labels: list[str]
    texts: list[list[str]]
    values: list[list[float]]
    value_name: str = "value"
    meta: dict[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not len(self.labels) == len(self.texts) == len(self.values):
            raise ValueError(f"{len(self.labels)} labels, {len(self.texts)} texts, {len(self.values)} value rows")
        for label, toks, vals in zip(self.labels, self.texts, self.values):
            if len(toks) != len(vals):
                raise ValueError(f"row {label!r}: {len(toks)} tokens but {len(vals)} values")

    def to_json(self) -> dict[str, Any]:
        rows = [{"label": lab, "tokens": t, "values": v} for lab, t, v in zip(self.labels, self.texts, self.values)]
        return {"analysis": self.analysis, **self.meta, "value_name": self.value_name, "rows": rows}


Result = Table | Grid | Scatter | Series | TokenValues
