"""A session on disk: one SQLite file holding the model spec, prompts, notes and an append-only
history of runs, each with its parameters (JSON) and its result (numbers as safetensors bytes,
labels and metadata as JSON). No pickle anywhere.

Every write is one transaction in SQLite's rollback-journal mode with full sync, so a crash or a
kill in the middle of a write leaves the file as it was before that write. Opening validates the
file read-only first: a corrupt, truncated, foreign or newer-schema file is a clear error and is
never modified.
"""

from __future__ import annotations

import json
import sqlite3
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
from safetensors.numpy import load as st_load
from safetensors.numpy import save as st_save

from analyses.errors import BadInput
from analyses.results import Grid, Table

SCHEMA_VERSION = 1
APPLICATION_ID = 0x57425331  # "WBS1": marks the file as a workbench session

_SCHEMA = """
CREATE TABLE meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE prompts (
    id INTEGER PRIMARY KEY, created REAL NOT NULL, kind TEXT NOT NULL,
    prompt TEXT NOT NULL, corrupt TEXT, answer TEXT, distractor TEXT
);
CREATE TABLE runs (
    id INTEGER PRIMARY KEY, created REAL NOT NULL, analysis TEXT NOT NULL, params TEXT NOT NULL,
    kind TEXT NOT NULL, body TEXT NOT NULL, tensors BLOB NOT NULL
);
CREATE TABLE notes (id INTEGER PRIMARY KEY, created REAL NOT NULL, text TEXT NOT NULL);
"""


@dataclass(frozen=True)
class Run:
    id: int
    created: float
    analysis: str
    params: dict[str, Any]
    result: Table | Grid


def _encode(result: Table | Grid) -> tuple[str, str, bytes]:
    """(kind, JSON body, safetensors bytes): numbers exactly (float64), everything else as JSON."""
    if isinstance(result, Grid):
        body = {"analysis": result.analysis, "axes": result.axes, "labels": result.labels, "meta": result.meta}
        return "grid", json.dumps(body), st_save({"values": np.asarray(result.values, dtype=np.float64)})
    numeric = {k: v for k, v in result.columns.items() if all(isinstance(x, (int, float)) for x in v)}
    text = {k: v for k, v in result.columns.items() if k not in numeric}
    ints = [k for k, v in numeric.items() if all(isinstance(x, int) for x in v)]
    body = {"analysis": result.analysis, "labels": result.labels, "order": list(result.columns),
            "text": text, "ints": ints, "meta": result.meta}
    tensors = {k: np.asarray(v, dtype=np.int64 if k in ints else np.float64) for k, v in numeric.items()}
    return "table", json.dumps(body), st_save(tensors) if tensors else st_save({"_": np.zeros(0)})


def _decode(kind: str, body: str, blob: bytes) -> Table | Grid:
    data, arrays = json.loads(body), st_load(blob)
    if kind == "grid":
        return Grid(data["analysis"], data["axes"], data["labels"], arrays["values"].tolist(), data["meta"])
    columns = {k: (data["text"][k] if k in data["text"] else arrays[k].tolist()) for k in data["order"]}
    return Table(data["analysis"], data["labels"], columns, data["meta"])


class Session:
    """An open session file. Create with ``Session.create``, open with ``Session.open``."""

    def __init__(self, path: Path, conn: sqlite3.Connection) -> None:
        self.path = path
        self._conn = conn

    # ---- opening ------------------------------------------------------------------------------

    @classmethod
    def create(cls, path: str | Path, model: dict[str, Any]) -> Session:
        path = Path(path)
        if path.exists():
            raise BadInput(f"{path}: already exists; open it instead of creating it")
        conn = cls._connect(path)
        with conn:
            conn.executescript(_SCHEMA)
            conn.execute(f"PRAGMA application_id = {APPLICATION_ID}")
            conn.executemany(
                "INSERT INTO meta VALUES (?, ?)",
                [("schema_version", str(SCHEMA_VERSION)), ("created", str(time.time())), ("model", json.dumps(model))],
            )
        return cls(path, conn)

    @classmethod
    def open(cls, path: str | Path) -> Session:
        path = Path(path)
        cls._validate(path)
        return cls(path, cls._connect(path))

    @classmethod
    def open_or_create(cls, path: str | Path, model: dict[str, Any]) -> Session:
        return cls.open(path) if Path(path).exists() else cls.create(path, model)

    @staticmethod
    def _connect(path: Path) -> sqlite3.Connection:
        conn = sqlite3.connect(path, isolation_level="DEFERRED", check_same_thread=False)
        conn.execute("PRAGMA journal_mode = DELETE")  # one file at rest; the journal makes writes atomic
        conn.execute("PRAGMA synchronous = FULL")
        return conn

    @staticmethod
    def _validate(path: Path) -> None:
        """Read-only checks; nothing here can change the file."""
        if not path.is_file():
            raise BadInput(f"{path}: no such session file")
        with path.open("rb") as f:
            if f.read(16) != b"SQLite format 3\x00":
                raise BadInput(f"{path}: not a workbench session (not an SQLite database)")
        if Path(f"{path}-journal").exists():
            # A write was interrupted: SQLite rolls the hot journal back on the first read through
            # a writable connection, restoring the file as it was after its last complete write.
            recover = sqlite3.connect(path)
            try:
                recover.execute("SELECT count(*) FROM sqlite_master").fetchone()
            except sqlite3.DatabaseError as e:
                raise BadInput(f"{path}: an interrupted write could not be rolled back ({e})") from None
            finally:
                recover.close()
        try:
            conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
            try:
                if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                    raise BadInput(f"{path}: the session file is corrupt (SQLite integrity check failed)")
                if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                    raise BadInput(f"{path}: an SQLite file, but not a workbench session")
                version = int(dict(conn.execute("SELECT key, value FROM meta"))["schema_version"])
            finally:
                conn.close()
        except sqlite3.DatabaseError as e:
            raise BadInput(f"{path}: the session file is corrupt or truncated ({e})") from None
        if version > SCHEMA_VERSION:
            raise BadInput(
                f"{path}: written by a newer workbench (session schema {version}; this one reads up to "
                f"{SCHEMA_VERSION}); upgrade the workbench to open it"
            )

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- contents -----------------------------------------------------------------------------

    @property
    def model(self) -> dict[str, Any]:
        return json.loads(self._conn.execute("SELECT value FROM meta WHERE key = 'model'").fetchone()[0])

    def append_run(self, analysis: str, params: dict[str, Any], result: Table | Grid) -> int:
        kind, body, blob = _encode(result)
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO runs (created, analysis, params, kind, body, tensors) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), analysis, json.dumps(params), kind, body, blob),
            )
        return int(cur.lastrowid)

    def runs(self) -> list[Run]:
        rows = self._conn.execute("SELECT id, created, analysis, params, kind, body, tensors FROM runs ORDER BY id")
        return [Run(i, c, a, json.loads(p), _decode(k, b, t)) for i, c, a, p, k, b, t in rows]

    def add_prompt(self, prompt: str, corrupt: str | None = None, answer: str | None = None,
                   distractor: str | None = None) -> int:
        """Store a prompt (or a clean/corrupt pair); one already stored is not stored twice."""
        kind = "pair" if corrupt is not None else "single"
        same = self._conn.execute(
            "SELECT id FROM prompts WHERE prompt = ? AND corrupt IS ? AND answer IS ? AND distractor IS ?",
            (prompt, corrupt, answer, distractor),
        ).fetchone()
        if same is not None:
            return int(same[0])
        with self._conn:
            cur = self._conn.execute(
                "INSERT INTO prompts (created, kind, prompt, corrupt, answer, distractor) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), kind, prompt, corrupt, answer, distractor),
            )
        return int(cur.lastrowid)

    def prompts(self) -> list[dict[str, Any]]:
        rows = self._conn.execute("SELECT id, kind, prompt, corrupt, answer, distractor FROM prompts ORDER BY id")
        return [dict(zip(("id", "kind", "prompt", "corrupt", "answer", "distractor"), r)) for r in rows]

    def add_note(self, text: str) -> int:
        with self._conn:
            cur = self._conn.execute("INSERT INTO notes (created, text) VALUES (?, ?)", (time.time(), text))
        return int(cur.lastrowid)

    def notes(self) -> list[str]:
        return [r[0] for r in self._conn.execute("SELECT text FROM notes ORDER BY id")]


def check_same_model(session: Session, info: dict[str, Any]) -> None:
    """A session holds one model: refuse to mix in runs of another (or of other weights)."""
    model = session.model
    if (model.get("spec"), model.get("revision")) != (info.get("spec"), info.get("revision")):
        raise BadInput(
            f"{session.path} holds runs of {model.get('spec')} ({model.get('revision')}); "
            f"this run loads {info.get('spec')} ({info.get('revision')}). Use another session file"
        )
