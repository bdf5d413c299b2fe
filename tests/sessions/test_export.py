"""Exports are named by run, never overwrite an earlier export, carry the model and every
parameter, and give every result type a flat CSV."""

from __future__ import annotations

import csv
import json

import pytest

from analyses.results import Grid, Scatter, Series, Table, TokenValues
from sessions.export import export_run
from sessions.store import Session

MODEL = {"spec": "toy:ioi", "revision": "sha256:abc", "dtype": "float32", "device": "cpu"}
PARAMS = {"clean": "When Mary and John", "corrupt": "When Alice and Bob", "answer": " Mary", "site": "head_out",
          "all_pos": True, "top": 5}
TABLE = Table("dla", ["embed", "L0H1", "bias"], {"value": [0.5, -1.0, 0.25], "top_token": [" Mary", "[BOS]", ","]},
              {"logit": 1.25})
GRID = Grid("patch", ["layer", "pos", "head"],
            {"layer": ["L0", "L1"], "pos": ["0:a", "1:b", "2:c"], "head": ["H0", "H1"]},
            [[[float(l * 6 + p * 2 + h) for h in range(2)] for p in range(3)] for l in range(2)], {"site": "head_out"})
SCATTER = Scatter("erasure", ["L0H0", "L0H1", "L1H0", "L1H1"], [0.1, 0.2, float("nan"), 0.4], [1.0, 2.0, 3.0, 4.0],
                  "dla", "erased")
SERIES = Series("faithfulness", [1, 2, 5, 10, 20], {"kept": [0.1, 0.3, 0.6, 0.9, 1.0], "random": [0.0] * 5}, "edges")
TOKENS = TokenValues("neuron", ["p0", "p1", "p2"], [["[BOS]", " Mary", ","], [], [" John"]],
                     [[0.1, 0.2, 0.3], [], [-1.0]], "activation")


def _csv_rows(path):
    with path.open(newline="", encoding="utf-8") as f:
        return list(csv.reader(f))


def test_two_exports_of_one_run_never_overwrite_each_other(tmp_path):
    first = export_run(TABLE, tmp_path, analysis="dla", params=PARAMS, model=MODEL, run_id=7)
    first_bytes = [p.read_bytes() for p in first]
    second = export_run(TABLE, tmp_path, analysis="dla", params={**PARAMS, "top": 6}, model=MODEL, run_id=7)
    third = export_run(TABLE, tmp_path, analysis="dla", params=PARAMS, model=MODEL, run_id=7)
    assert [p.name for p in first] == ["workbench-run7-dla.json", "workbench-run7-dla.csv"]
    assert [p.name for p in second] == ["workbench-run7-dla-2.json", "workbench-run7-dla-2.csv"]
    assert [p.name for p in third] == ["workbench-run7-dla-3.json", "workbench-run7-dla-3.csv"]
    assert [p.read_bytes() for p in first] == first_bytes
    assert json.loads(second[0].read_text())["params"]["top"] == 6


def test_a_taken_csv_name_moves_both_files_to_the_next_stem(tmp_path):
    (tmp_path / "workbench-unsaved-patch.csv").write_text("someone else's file")
    paths = export_run(GRID, tmp_path, analysis="patch", params=PARAMS, model=MODEL)
    assert [p.name for p in paths] == ["workbench-unsaved-patch-2.json", "workbench-unsaved-patch-2.csv"]
    assert (tmp_path / "workbench-unsaved-patch.csv").read_text() == "someone else's file"
    assert not (tmp_path / "workbench-unsaved-patch.json").exists()


def test_exports_of_different_runs_of_one_session_get_different_names(tmp_path):
    """The defect: names came from the session's run count, so two runs' exports collided."""
    with Session.create(tmp_path / "s.wbs", MODEL) as s:
        ids = [s.append_run("dla", PARAMS, TABLE), s.append_run("dla", PARAMS, TABLE)]
        runs = s.runs()
    paths = [export_run(r.result, tmp_path, analysis=r.analysis, params=r.params, model=MODEL, run_id=r.id)
             for r in runs]
    assert [p[0].name for p in paths] == [f"workbench-run{i}-dla.json" for i in ids]


def test_the_json_carries_model_analysis_run_and_every_parameter(tmp_path):
    json_path, _ = export_run(GRID, tmp_path, analysis="patch", params=PARAMS, model=MODEL, run_id=3)
    data = json.loads(json_path.read_text())
    headline = data.pop("headline")
    assert data == {"model": MODEL, "analysis": "patch", "run_id": 3, "params": PARAMS, "result": GRID.to_json()}
    assert headline[0].startswith("site head_out") or headline == []  # what the run found, as the CLI says it


def test_the_json_is_strict_nan_written_as_null(tmp_path):
    """JSON has no NaN: a missing value (a point's x here) is written as null, as --json does."""
    json_path, _ = export_run(SCATTER, tmp_path, analysis="erasure-scatter", params={}, model=MODEL, run_id=4)
    text = json_path.read_text()
    data = json.loads(text, parse_constant=lambda c: pytest.fail(f"not JSON: {c}"))
    assert "NaN" not in text and data["result"]["points"][2]["x"] is None


@pytest.mark.parametrize("result, header, rows", [
    (TABLE, ["label", "value", "top_token"], 3),
    (GRID, ["layer", "pos", "head", "value"], 12),
    (SCATTER, ["label", "dla", "erased"], 4),
    (SERIES, ["edges", "kept", "random"], 5),
    (TOKENS, ["label", "pos", "token", "activation"], 4),
])
def test_every_result_type_has_a_flat_csv(tmp_path, result, header, rows):
    _, csv_path = export_run(result, tmp_path, analysis=result.analysis, params={}, model=MODEL, run_id=1)
    table = _csv_rows(csv_path)
    assert table[0] == header and len(table) == 1 + rows
    assert all(len(row) == len(header) for row in table)


def test_csv_cells_name_their_coordinates(tmp_path):
    _, grid_csv = export_run(GRID, tmp_path, analysis="patch", params={}, model=MODEL, run_id=1)
    assert _csv_rows(grid_csv)[1 + 6 * 1 + 2 * 2 + 1] == ["L1", "2:c", "H1", "11.0"]
    _, tokens_csv = export_run(TOKENS, tmp_path, analysis="neuron", params={}, model=MODEL, run_id=1)
    assert _csv_rows(tokens_csv)[1:] == [["p0", "0", "[BOS]", "0.1"], ["p0", "1", " Mary", "0.2"],
                                         ["p0", "2", ",", "0.3"], ["p2", "0", " John", "-1.0"]]

