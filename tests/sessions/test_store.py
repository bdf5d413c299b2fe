"""Session files: every result type round-trips, crashes lose nothing committed, bad files are
refused untouched."""

from __future__ import annotations

import json
import sqlite3
import subprocess
import sys
import textwrap

import pytest

from analyses.errors import BadInput
from analyses.results import Grid, Table
from sessions.store import Session

MODEL = {"spec": "toy:ioi", "revision": "sha256:abc", "dtype": "float32", "device": "cpu"}


def _results():
    table = Table("dla", ["embed", "L0H1", "bias"], {"value": [0.1, -2.5e-8, 1 / 3]},
                  {"prompt_tokens": ["[BOS]", "When"], "logit": 1.25, "by": "head"})
    lens = Table("logit_lens", ["embed", "L0"], {"value": [0.5, 1.5], "answer_rank": [3, 0], "top_token": [" Mary", "["]},
                 {"pos": 4})
    evaluation = Table("eval", ["ABBA", "all"], {"accuracy": [0.99, 0.98], "n": [5, 10]},
                       {"task": "ioi", "by_variant": {"ABBA": {"n": 5, "accuracy": 0.99}}})
    grid2 = Grid("patch", ["layer", "pos"], {"layer": ["L0", "L1"], "pos": ["0:a", "1:b"]}, [[1.0, 2.0], [3.0, 4.5]],
                 {"site": "resid_pre", "clean": 1.0, "corrupt": -1.0})
    grid3 = Grid("patch", ["layer", "pos", "head"], {"layer": ["L0"], "pos": ["0:a"], "head": ["H0", "H1"]},
                 [[[0.1, 0.2]]], {"site": "head_out"})
    return [table, lens, evaluation, grid2, grid3]


def test_every_result_type_round_trips_exactly(tmp_path):
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        for r in _results():
            s.append_run(r.analysis, {"prompt": "x", "by": "head"}, r)
        s.add_prompt("When Mary and John", "When Mary and Alice", " Mary", " Alice")
        s.add_note("L1H3 looks like a name mover")
    with Session.open(path) as s:
        runs = s.runs()
        assert [r.result.to_json() for r in runs] == [r.to_json() for r in _results()]
        assert runs[0].params == {"prompt": "x", "by": "head"} and s.model == MODEL
        assert s.prompts()[0]["kind"] == "pair" and s.notes() == ["L1H3 looks like a name mover"]
        assert isinstance(runs[1].result.columns["answer_rank"][0], int)


def test_a_write_killed_mid_transaction_loses_nothing_committed(tmp_path):
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        for r in _results()[:3]:
            s.append_run(r.analysis, {}, r)
    child = textwrap.dedent(f"""
        import os, signal
        from sessions.store import Session
        s = Session.open({str(path)!r})
        conn = s._conn
        conn.execute("BEGIN")
        conn.execute("INSERT INTO runs (created, analysis, params, kind, body, tensors) VALUES (0, 'x', '{{}}', 'grid', '{{}}', ?)",
                     (b"0" * 5_000_000,))
        os.kill(os.getpid(), signal.SIGKILL)  # dies with the transaction open
    """)
    done = subprocess.run([sys.executable, "-c", child], capture_output=True)
    assert done.returncode == -9
    with Session.open(path) as s:
        assert [r.analysis for r in s.runs()] == ["dla", "logit_lens", "eval"]


@pytest.mark.parametrize("damage, message", [
    (lambda p: p.write_bytes(b"this is not a database at all" * 100), "not an SQLite database"),
    (lambda p: p.write_bytes(p.read_bytes()[: len(p.read_bytes()) // 2]), "corrupt"),
])
def test_corrupt_or_truncated_files_are_refused_untouched(tmp_path, damage, message):
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        for r in _results():
            s.append_run(r.analysis, {}, r)
    damage(path)
    before = path.read_bytes()
    with pytest.raises(BadInput, match=message):
        Session.open(path)
    assert path.read_bytes() == before


def test_newer_schema_and_foreign_files_are_refused(tmp_path):
    path = tmp_path / "s.wbs"
    Session.create(path, MODEL).close()
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    conn.close()
    with pytest.raises(BadInput, match="newer workbench"):
        Session.open(path)
    other = tmp_path / "other.db"
    conn = sqlite3.connect(other)
    with conn:
        conn.execute("CREATE TABLE t (x)")
    conn.close()
    with pytest.raises(BadInput, match="not a workbench session"):
        Session.open(other)
    with pytest.raises(BadInput, match="no such session"):
        Session.open(tmp_path / "missing.wbs")
    with pytest.raises(BadInput, match="already exists"):
        Session.create(path, MODEL)


def test_headless_runs_append_to_a_session(tmp_path, checkpoints, capsys):
    from workbench.cli import main

    path = tmp_path / "s.wbs"
    argv = ["run", "dla", "--model", str(checkpoints["gpt2"]), "--prompt", "When Mary and John went to the store",
            "--answer", " Mary", "--session", str(path), "--json"]
    assert main(argv) == 0 and main(argv + ["--by", "head"]) == 0
    printed = [json.loads(line) for line in capsys.readouterr().out.splitlines()]
    with Session.open(path) as s:
        runs = s.runs()
        assert [r.params.get("by") for r in runs] == ["layer", "head"]
        assert runs[1].result.values == [row["value"] for row in printed[1]["rows"]]
    other = argv[:3] + [str(checkpoints["neox"])] + argv[4:]
    assert main(other) == 2 and "holds runs of" in capsys.readouterr().err
    path.write_bytes(b"garbage" * 10)
    assert main(argv) == 2 and "not an SQLite database" in capsys.readouterr().err
    assert path.read_bytes() == b"garbage" * 10
