"""A session file with one damaged run opens: that run is marked damaged, every other run reads
back, and neither opening nor appending changes a byte of what is already stored."""

from __future__ import annotations

import hashlib
import sqlite3

from sessions.store import Session
from test_store import _results
from sessions.workspace import Workspace


def _digest(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def _damage_run(path, run_id: int) -> None:
    """The run's safetensors bytes replaced by bytes that are not safetensors (the row itself
    is well formed, so SQLite's integrity check passes: only decoding the run fails)."""
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET tensors = ? WHERE id = ?", (b"\x07not safetensors" * 3, run_id))
    conn.close()


def _raw_runs(path) -> list[tuple]:
    conn = sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True)
    try:
        return conn.execute("SELECT * FROM runs ORDER BY id").fetchall()
    finally:
        conn.close()


def test_a_workspace_opens_with_the_damaged_run_marked_and_the_file_unchanged(tmp_path):
    """Defect: one run's damaged blob made the whole session refuse to open."""
    from sessions.workspace import damage_text

    path = tmp_path / "s.wbs"
    with Session.create(path, {"spec": "toy:ioi", "revision": "r"}) as s:
        ids = [s.append_run(r.analysis, {"prompt": "When Mary and John"}, r) for r in _results()]
        s.add_prompt("When Mary and John", None, " Mary", " John")
        s.add_note("a note")
    _damage_run(path, ids[1])
    before = _digest(path)
    ws = Workspace.from_file(path)
    try:
        assert [e.id for e in ws.runs] == ids
        assert [e.id for e in ws.damaged] == [ids[1]]
        assert ws.runs[1].analysis == "logit_lens" and ws.runs[1].params == {"prompt": "When Mary and John"}
        assert all(e.result is not None for e in ws.runs if e.damage is None)
        assert ws.last_readable() is ws.runs[-1] and ws.prompts and ws.notes == ["a note"]
        why = damage_text(ws.runs[1])
        assert f"Run {ids[1]} (logit_lens) is damaged" in why and "intact" in why
    finally:
        ws.close()
    assert _digest(path) == before  # opened and read: not a byte changed


def test_the_cli_appends_to_a_session_with_a_damaged_run_and_leaves_that_run_alone(tmp_path, capsys):
    from conftest import PROMPT

    from workbench.cli import main

    path = tmp_path / "s.wbs"
    run = ["run", "dla", "--model", "toy:random-gpt2", "--prompt", PROMPT, "--answer", "Mary", "--session", str(path)]
    assert main(run) == 0 and main(run) == 0, capsys.readouterr().err
    _damage_run(path, 1)
    stored = _raw_runs(path)
    assert main(run) == 0, capsys.readouterr().err
    after = _raw_runs(path)
    assert after[:2] == stored and len(after) == 3  # the damaged run and the good one byte for byte
    with Session.open(path) as s:
        runs = s.runs()
    assert runs[0].damage is not None and runs[1].result == runs[2].result is not None
