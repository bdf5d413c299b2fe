"""Session files: every result type round-trips, crashes lose nothing committed, bad files are
refused untouched."""

from __future__ import annotations

import json
import random
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
        from pathlib import Path
        from sessions.store import Session
        conn = Session._connect(Path({str(path)!r}))  # the connection a session writes through
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


# ---- damaged files: refused as BadInput naming the file (or the row), never left changed -------

def _session_bytes(tmp_path) -> bytes:
    """A real session several pages long: small runs, a large grid (overflow pages), prompts, notes."""
    path = tmp_path / "source.wbs"
    with Session.create(path, MODEL) as s:
        for r in _results():
            s.append_run(r.analysis, {"prompt": "When Mary and John", "by": "head"}, r)
        big = Grid("patch", ["layer", "pos"], {"layer": ["L0", "L1"], "pos": [f"{i}:tok" for i in range(400)]},
                   [[i / 7 for i in range(400)], [-i / 3 for i in range(400)]], {"site": "resid_pre"})
        s.append_run("patch", {"site": "resid_pre"}, big)
        s.add_prompt("When Mary and John", "When Alice and Bob", " Mary", " Alice")
        s.add_note("L1H3 looks like a name mover")
    return path.read_bytes()


def _damage(data: bytes, offset: int, seed: int) -> bytes:
    noise = random.Random(seed).randbytes(64)
    return data[:offset] + noise + data[offset + 64:]


def _offsets(data: bytes) -> dict[str, int]:
    """Where to damage: the schema's record of a table name (SQLite then quotes the damaged
    name in its error), a run's JSON text, a run's safetensors header, and plain fractions."""
    return {"schema": data.index(b"promptsprompts"), "run text": data.index(b'"0:tok", "1:tok"'),
            "run tensors": data.index(b'{"values":{"dtype":"F64"'),
            "25%": len(data) // 4, "50%": len(data) // 2, "75%": 3 * len(data) // 4}


@pytest.mark.parametrize("seed", range(3))
@pytest.mark.parametrize("where", ["schema", "run text", "run tensors", "25%", "50%", "75%"])
def test_random_bytes_in_the_middle_are_refused_or_harmless(tmp_path, where, seed):
    data = _session_bytes(tmp_path)
    path = tmp_path / "damaged.wbs"
    path.write_bytes(_damage(data, _offsets(data)[where], seed))
    before = path.read_bytes()
    try:
        with Session.open(path) as s:  # the damage may lie where nothing is read, or only in a row
            s.model, s.runs(), s.prompts(), s.notes()
    except BadInput as e:
        assert str(path) in str(e)
    assert path.read_bytes() == before


def _tamper(path, sql: str, *args) -> None:
    conn = sqlite3.connect(path)
    with conn:
        conn.execute(sql, args)
    conn.close()


@pytest.mark.parametrize("column, value", [
    ("body", "{not json"),
    ("body", b"\xff\xfe not utf-8"),
    ("body", '{"analysis": "dla"}'),
    ("tensors", b"\x00" * 40),
    ("params", "[1, 2]"),
    ("kind", "hologram"),
])
def test_a_run_whose_stored_bytes_do_not_decode_is_marked_damaged_by_id(tmp_path, column, value):
    """Defect: one damaged run made the whole session unreadable. It is now that run alone,
    marked with why; the others read back exactly."""
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        ids = [s.append_run(r.analysis, {"by": "head"}, r) for r in _results()]
    as_text = isinstance(value, bytes) and column != "tensors"  # text that is not UTF-8
    sql = f"UPDATE runs SET {column} = " + ("CAST(? AS TEXT)" if as_text else "?")
    _tamper(path, sql + " WHERE id = ?", value, ids[2])
    with Session.open(path) as s:
        runs = s.runs()
    assert [r.id for r in runs] == ids
    damaged = runs[2]
    assert damaged.result is None and damaged.damage.startswith(f"{path}: run {ids[2]} cannot be read")
    assert damaged.analysis == "eval" and damaged.params == ({} if column == "params" else {"by": "head"})
    assert [r.result for i, r in enumerate(runs) if i != 2] == [r for i, r in enumerate(_results()) if i != 2]
    assert all(r.damage is None for i, r in enumerate(runs) if i != 2)


def test_prompts_notes_and_model_that_do_not_decode_are_refused(tmp_path):
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        s.add_prompt("When Mary and John")
        note = s.add_note("a note")
    _tamper(path, "UPDATE prompts SET prompt = CAST(? AS TEXT)", b"When \xff")
    _tamper(path, "UPDATE notes SET text = CAST(? AS TEXT)", b"\xc3(")
    _tamper(path, "UPDATE meta SET value = 'not json' WHERE key = 'model'")
    with Session.open(path) as s:
        with pytest.raises(BadInput, match="prompt 1 cannot be read"):
            s.prompts()
        with pytest.raises(BadInput, match=f"note {note} cannot be read"):
            s.notes()
        with pytest.raises(BadInput, match="model spec cannot be read"):
            s.model


def test_the_cli_refuses_a_damaged_session_with_exit_2(tmp_path, capsys):
    from conftest import PROMPT

    from workbench.cli import main

    def run(path):
        return main(["run", "dla", "--model", "toy:random-gpt2", "--prompt", PROMPT, "--answer", " Mary",
                     "--session", str(path)])

    good = tmp_path / "good.wbs"
    assert run(good) == 0 and run(good) == 0, capsys.readouterr().err  # the command itself is fine
    data = good.read_bytes()
    bad = tmp_path / "bad.wbs"
    damaged = _damage(data, data.index(b"promptsprompts"), seed=1)  # the schema's name of a table
    bad.write_bytes(damaged)
    capsys.readouterr()
    assert run(bad) == 2
    err = capsys.readouterr().err
    assert str(bad) in err and "Traceback" not in err
    assert bad.read_bytes() == damaged


def test_a_write_sqlite_refuses_is_bad_input_and_still_an_sqlite_error(tmp_path):
    path = tmp_path / "s.wbs"
    with Session.create(path, MODEL) as s:
        s.append_run("dla", {}, _results()[0])
    _tamper(path, "CREATE TRIGGER no_notes BEFORE INSERT ON notes BEGIN SELECT RAISE(ABORT, 'notes are off'); END")
    with Session.open(path) as s:
        with pytest.raises(BadInput, match=f"{path}: cannot write") as refused:
            s.add_note("kept?")
        assert isinstance(refused.value, sqlite3.Error)
        assert s.notes() == [] and len(s.runs()) == 1
