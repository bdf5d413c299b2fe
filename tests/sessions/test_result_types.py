"""Scatter, Series and TokenValues results come back from a real session file exactly: NaN,
negative zero, empty rows, odd tokens, ints kept ints, text x values and nested metadata."""

from __future__ import annotations

import json
import math

import pytest

from analyses.results import Scatter, Series, TokenValues
from sessions.store import Session

MODEL = {"spec": "toy:random-gpt2", "revision": "sha256:0", "dtype": "float32", "device": "cpu"}
NAN, INF = float("nan"), float("inf")
META = {"tokens": ["[BOS]", " Mary", "é", "日本"], "nested": {"a": [1, {"b": None}], "nan": NAN}, "k": 3}


def _results():
    return [
        Scatter("erasure", ["L0H1", " Mary", "[BOS]", "日本"], [0.1, -0.0, NAN, 1e-300], [-2.5, INF, 1 / 3, -0.0],
                "dla", "erased dla", META),
        Scatter("erasure", [], [], [], meta={}),
        Series("faithfulness", [1, 2, 5, 10], {"kept": [0.5, NAN, -0.0, 1.0], "random": [0.0, 0.1, 0.2, 0.3]},
               "edges", META),
        Series("recall", ["L0", "L1", " Mary", "[BOS]"], {"acc": [1 / 3, 2 / 3, NAN, 1.0]}, "layer", {}),
        Series("mixed", [0.5, 1, "all", None], {"ints": [1, 2, 3, -4]}, "x", {"why": "x mixes kinds"}),
        Series("empty", [], {}, meta={}),
        TokenValues("neuron", ["p0", "empty", " Mary"], [["[BOS]", " Mary", "é"], [], ["日本", "\n"]],
                    [[0.25, NAN, -0.0], [], [1e308, -1e-308]], "activation", META),
        TokenValues("attn", [], [], [], meta={"nothing": []}),
    ]


def _same(a, b):
    """Equal, NaN equal to NaN and -0.0 told from 0.0, ints told from floats, recursively."""
    if isinstance(a, float) and isinstance(b, float):
        return (math.isnan(a) and math.isnan(b)) or (a == b and math.copysign(1, a) == math.copysign(1, b))
    if type(a) is not type(b):
        return False
    if isinstance(a, dict):
        return list(a) == list(b) and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, (list, tuple)):
        return len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return a == b


def _fields(r):
    return {name: getattr(r, name) for name in r.__dataclass_fields__}


@pytest.fixture
def reopened(tmp_path):
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        for r in _results():
            s.append_run(r.analysis, {"by": "head", "top": 5}, r)
    with Session.open(path) as s:
        return s.runs()


@pytest.mark.parametrize("i", range(len(_results())))
def test_new_result_types_round_trip_field_by_field(reopened, i):
    expected, got = _results()[i], reopened[i].result
    assert type(got) is type(expected)
    for name, value in _fields(expected).items():
        assert _same(getattr(got, name), value), name
    dumps = lambda r: json.dumps(r.to_json(), sort_keys=True)  # NaN is written as NaN, so it compares
    assert dumps(got) == dumps(expected)
    assert reopened[i].params == {"by": "head", "top": 5}


def test_scatter_fit_is_the_same_after_reload(reopened):
    scatter = next(r.result for r in reopened if isinstance(r.result, Scatter) and r.result.labels)
    assert _same(scatter.fit(), _results()[0].fit())


def test_comparison_helper_sees_the_differences_that_matter():
    assert _same([NAN, -0.0, 1], [NAN, -0.0, 1])
    assert not _same([0.0], [-0.0]) and not _same([1], [1.0]) and not _same([NAN], [0.0])
