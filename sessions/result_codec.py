"""A result as a session stores it: numbers as safetensors bytes (exactly: floats as float64, ints as
int64), labels and metadata as JSON; no pickle. ``encode`` and ``decode`` are each other's inverse."""

from __future__ import annotations

import json
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from analyses.results import Grid, Result, Scatter, Series, Table, TokenValues


def to_json(obj: Any) -> str:
    """JSON that also takes numpy scalars (an analysis may leave one in ``meta``); NaN and
    infinities are written as Python's ``json`` writes them, so they read back as written."""
    return json.dumps(obj, default=lambda o: o.item() if isinstance(o, np.generic) else _unjsonable(o))


def _unjsonable(o: Any) -> Any:
    raise TypeError(f"{type(o).__name__} cannot be stored in a session")


def _pack(values: list[Any]) -> np.ndarray | None:
    """An array that gives ``values`` back exactly (all floats: float64; all ints: int64), or
    None where only JSON can (text, None, bools, ints mixed with floats, ints past int64)."""
    if all(isinstance(v, (float, np.floating)) for v in values):
        return np.asarray(values, dtype=np.float64)
    if all(isinstance(v, (int, np.integer)) and not isinstance(v, bool) and -(2**63) <= v < 2**63 for v in values):
        return np.asarray(values, dtype=np.int64)
    return None


def _put(name: str, values: list[Any], tensors: dict[str, np.ndarray], as_json: dict[str, list[Any]]) -> None:
    """Store one list of values: as a tensor where one holds it exactly, else as JSON."""
    arr = _pack(values)
    if arr is None:
        as_json[name] = values
    else:
        tensors[name] = arr


def _get(name: str, arrays: dict[str, np.ndarray], as_json: dict[str, list[Any]]) -> list[Any]:
    return as_json[name] if name in as_json else arrays[name].tolist()


def encode(result: Result, model: dict[str, Any] | None = None) -> tuple[str, str, bytes]:
    """(kind, JSON body, safetensors bytes): numbers exactly, everything else as JSON. ``model``:
    the loaded model's facts, kept in the body (a key older readers ignore, so no schema change)."""
    tensors: dict[str, np.ndarray] = {}
    as_json: dict[str, list[Any]] = {}
    if isinstance(result, Grid):
        kind = "grid"
        body = {"axes": result.axes, "labels": result.labels}
        tensors["values"] = np.asarray(result.values, dtype=np.float64)
    elif isinstance(result, Table):
        kind = "table"
        for name, col in result.columns.items():
            _put(name, col, tensors, as_json)
        ints = [k for k, a in tensors.items() if a.dtype == np.int64]
        body = {"labels": result.labels, "order": list(result.columns), "text": as_json, "ints": ints}
    elif isinstance(result, Scatter):
        kind = "scatter"
        _put("x", result.x, tensors, as_json)
        _put("y", result.y, tensors, as_json)
        body = {"labels": result.labels, "x_name": result.x_name, "y_name": result.y_name, "json": as_json}
    elif isinstance(result, Series):
        kind = "series"
        _put("x", result.x, tensors, as_json)
        for i, ys in enumerate(result.lines.values()):
            _put(f"line{i}", ys, tensors, as_json)
        body = {"x_name": result.x_name, "lines": list(result.lines), "json": as_json}
    elif isinstance(result, TokenValues):
        kind = "tokens"  # rows differ in length: values flattened, split again by each row's tokens
        _put("values", [v for row in result.values for v in row], tensors, as_json)
        body = {"labels": result.labels, "texts": result.texts, "value_name": result.value_name, "json": as_json}
    else:
        raise TypeError(f"{type(result).__name__} is not a result type a session stores")
    body = {"analysis": result.analysis, **body, "meta": result.meta, **({"model": model} if model else {})}
    return kind, to_json(body), st_save(tensors)


def decode(kind: str, body: str, blob: bytes) -> Result:
    """The result ``encode`` wrote; raises (ValueError, KeyError, ...) on damaged input."""
    data, arrays = json.loads(body), st_load(blob)
    analysis, meta = data["analysis"], data["meta"]
    if kind == "grid":
        return Grid(analysis, data["axes"], data["labels"], arrays["values"].tolist(), meta)
    if kind == "table":
        columns = {k: _get(k, arrays, data["text"]) for k in data["order"]}
        return Table(analysis, data["labels"], columns, meta)
    as_json = data["json"]
    if kind == "scatter":
        x, y = _get("x", arrays, as_json), _get("y", arrays, as_json)
        return Scatter(analysis, data["labels"], x, y, data["x_name"], data["y_name"], meta)
    if kind == "series":
        lines = {name: _get(f"line{i}", arrays, as_json) for i, name in enumerate(data["lines"])}
        return Series(analysis, _get("x", arrays, as_json), lines, data["x_name"], meta)
    if kind == "tokens":
        values = _split(_get("values", arrays, as_json), data["texts"])
        return TokenValues(analysis, data["labels"], data["texts"], values, data["value_name"], meta)
    raise ValueError(f"unknown result kind {kind!r}")


def _split(flat: list[Any], texts: list[list[str]]) -> list[list[Any]]:
    """Flat values back into rows as long as each row's tokens."""
    if len(flat) != sum(len(t) for t in texts):
        raise ValueError(f"{len(flat)} values for {sum(len(t) for t in texts)} tokens")
    rows, start = [], 0
    for toks in texts:
        rows.append(flat[start:start + len(toks)])
        start += len(toks)
    return rows
