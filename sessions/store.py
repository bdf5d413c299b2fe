"""A session on disk: one SQLite file holding the model spec, prompts, notes and an append-only
history of runs, each with its parameters (JSON) and its result (numbers as safetensors bytes,
labels and metadata as JSON). No pickle anywhere.

Every write is one transaction in SQLite's rollback-journal mode with full sync, so a crash or a
kill in the middle of a write leaves the file as it was before that write. Opening validates the
file read-only first: a corrupt, truncated, foreign or newer-schema file is a clear error and is
never modified. An opened file is read through a read-only connection until the first write, so
opening and reading leave it byte for byte as it was; one run whose stored bytes do not decode is
returned marked damaged, and every other run stays readable.
"""

from __future__ import annotations

import json
import sqlite3
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from analyses.errors import BadInput
from analyses.results import Result
from sessions.result_codec import decode, encode, to_json

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


class WriteRefused(BadInput, sqlite3.DatabaseError):
    """A write SQLite refused. BadInput, so the CLI exits 2 with the message; still an
    ``sqlite3.Error`` for callers that catch SQLite's errors around a save."""


@dataclass(frozen=True)
class Run:
    """A stored run. ``damage`` says why its bytes do not decode (then ``result`` is None and
    ``analysis``/``params`` are what could still be read)."""

    id: int
    created: float
    analysis: str
    params: dict[str, Any]
    result: Result | None
    damage: str | None = None
    model: dict[str, Any] | None = None  # the model as this run saw it (spec, revision, dtype, device, parity)


class Session:
    """An open session file. Create with ``Session.create``, open with ``Session.open``."""

    def __init__(self, path: Path, conn: sqlite3.Connection, read_only: bool = False) -> None:
        self.path = path
        self._conn = conn
        self._read_only = read_only  # until the first write: reading never changes the file

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
        return cls(path, cls._connect_read_only(path), read_only=True)

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
    def _connect_read_only(path: Path) -> sqlite3.Connection:
        return sqlite3.connect(f"{path.absolute().as_uri()}?mode=ro", uri=True, check_same_thread=False)

    @staticmethod
    def _validate(path: Path) -> None:
        """Read-only checks (past rolling back an interrupted write); nothing here changes the file."""
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
            except _DAMAGE as e:
                raise BadInput(f"{path}: an interrupted write could not be rolled back ({_say(e)})") from None
            finally:
                recover.close()
        try:
            version = Session._schema_version(path)
        except BadInput:
            raise
        except (*_DAMAGE, ValueError, KeyError, TypeError) as e:
            # Damage anywhere (even in the schema, whose text then is not UTF-8) is a bad file, not a bug.
            raise BadInput(f"{path}: the session file is corrupt or truncated ({_say(e)})") from None
        if version > SCHEMA_VERSION:
            raise BadInput(
                f"{path}: written by a newer workbench (session schema {version}; this one reads up to "
                f"{SCHEMA_VERSION}); upgrade the workbench to open it"
            )

    @staticmethod
    def _schema_version(path: Path) -> int:
        """Integrity check, file type and schema version, through a read-only connection."""
        conn = sqlite3.connect(f"file:{path}?mode=ro", uri=True)
        try:
            if conn.execute("PRAGMA quick_check").fetchone()[0] != "ok":
                raise BadInput(f"{path}: the session file is corrupt (SQLite integrity check failed)")
            if conn.execute("PRAGMA application_id").fetchone()[0] != APPLICATION_ID:
                raise BadInput(f"{path}: an SQLite file, but not a workbench session")
            return int(dict(conn.execute("SELECT key, value FROM meta"))["schema_version"])
        finally:
            conn.close()

    def close(self) -> None:
        self._conn.close()

    def __enter__(self) -> Session:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # ---- contents -----------------------------------------------------------------------------
    # Damage that the integrity check cannot see (bytes changed inside a row) surfaces when a row
    # is read: it becomes BadInput naming the row (a run: the run marked damaged), never an
    # exception from sqlite3, json or safetensors escaping to the CLI (exit 1) or the TUI.

    def _select(self, what: str, sql: str) -> list[tuple[Any, ...]]:
        try:
            return self._conn.execute(sql).fetchall()
        except _DAMAGE as e:
            raise BadInput(f"{self.path}: its {what} cannot be read; the session file is corrupt ({_say(e)})") from None

    @contextmanager
    def _row(self, what: str) -> Iterator[None]:
        """Decoding one stored row: whatever fails there (text not UTF-8, JSON, safetensors, a
        result's own checks) means that row's bytes are damaged."""
        try:
            yield
        except Exception as e:
            raise BadInput(f"{self.path}: {what} cannot be read; the session file is damaged ({_say(e)})") from None

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One transaction; a file SQLite cannot write (damaged, read-only, disk full) is refused."""
        try:
            if self._read_only:  # the first write: from here on the file is open for writing
                self._conn.close()
                self._conn, self._read_only = self._connect(self.path), False
            with self._conn:
                yield self._conn
        except _DAMAGE as e:
            raise WriteRefused(f"{self.path}: cannot write to the session file ({_say(e)})") from None

    @property
    def model(self) -> dict[str, Any]:
        rows = self._select("model", "SELECT CAST(value AS BLOB) FROM meta WHERE key = 'model'")
        with self._row("the model spec"):
            model = json.loads(_text(rows[0][0]) if rows else "null")
            if not isinstance(model, dict):
                raise TypeError(f"a {type(model).__name__}, not an object")
            return model

    def append_run(self, analysis: str, params: dict[str, Any], result: Result,
                   model: dict[str, Any] | None = None) -> int:
        """Append a run; ``model`` (the loader's facts, parity check included) is stored with it,
        so each run says which weights, dtype and device made it and whether they passed."""
        kind, body, blob = encode(result, model)
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO runs (created, analysis, params, kind, body, tensors) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), analysis, to_json(params), kind, body, blob),
            )
        return int(cur.lastrowid)

    def runs(self) -> list[Run]:
        """Every run, oldest first. A run whose bytes do not decode comes back with ``damage`` set
        and no result: one damaged row never hides the others."""
        rows = self._select("runs", "SELECT id, created, CAST(analysis AS BLOB), CAST(params AS BLOB), "
                                    "CAST(kind AS BLOB), CAST(body AS BLOB), tensors FROM runs ORDER BY id")
        out = []
        for row in rows:
            try:
                out.append(self._run(*row))
            except BadInput as e:
                out.append(_damaged_run(row, str(e)))
        return out

    def _run(self, run_id: int, created: Any, analysis: bytes, params: bytes, kind: bytes, body: bytes,
             blob: bytes) -> Run:
        with self._row(f"run {run_id}"):
            params_ = json.loads(_text(params))
            if not isinstance(params_, dict):
                raise TypeError(f"parameters are a {type(params_).__name__}, not an object")
            model = json.loads(_text(body)).get("model")
            return Run(int(run_id), float(created), _text(analysis), params_,
                       decode(_text(kind), _text(body), bytes(blob)), model=model if isinstance(model, dict) else None)

    def add_prompt(self, prompt: str, corrupt: str | None = None, answer: str | None = None,
                   distractor: str | None = None) -> int:
        """Store a prompt (or a clean/corrupt pair); one already stored is not stored twice."""
        kind = "pair" if corrupt is not None else "single"
        with self._write() as conn:
            same = conn.execute(
                "SELECT id FROM prompts WHERE prompt = ? AND corrupt IS ? AND answer IS ? AND distractor IS ?",
                (prompt, corrupt, answer, distractor),
            ).fetchone()
            if same is not None:
                return int(same[0])
            cur = conn.execute(
                "INSERT INTO prompts (created, kind, prompt, corrupt, answer, distractor) VALUES (?, ?, ?, ?, ?, ?)",
                (time.time(), kind, prompt, corrupt, answer, distractor),
            )
        return int(cur.lastrowid)

    def prompts(self) -> list[dict[str, Any]]:
        fields = ("kind", "prompt", "corrupt", "answer", "distractor")
        casts = ", ".join(f"CAST({f} AS BLOB)" for f in fields)
        rows = self._select("prompts", f"SELECT id, {casts} FROM prompts ORDER BY id")
        out = []
        for prompt_id, *texts in rows:
            with self._row(f"prompt {prompt_id}"):
                out.append({"id": prompt_id, **{f: _text(t) for f, t in zip(fields, texts)}})
        return out

    def add_note(self, text: str) -> int:
        with self._write() as conn:
            cur = conn.execute("INSERT INTO notes (created, text) VALUES (?, ?)", (time.time(), text))
        return int(cur.lastrowid)

    def notes(self) -> list[str]:
        rows = self._select("notes", "SELECT id, CAST(text AS BLOB) FROM notes ORDER BY id")
        out = []
        for note_id, text in rows:
            with self._row(f"note {note_id}"):
                out.append(_text(text))
        return out


_DAMAGE = (sqlite3.Error, UnicodeDecodeError)
"""What SQLite raises on a damaged file: its own errors, or UnicodeDecodeError where the error
message quotes damaged schema text (Python 3.11)."""


def _say(e: BaseException) -> str:
    """An exception as a short line: SQLite quotes whole damaged rows in its messages."""
    text = f"{type(e).__name__}: {e}"
    return text if len(text) <= 200 else text[:200] + "…"


def _text(value: bytes | str | None) -> str | None:
    """A TEXT column read as bytes (``CAST(... AS BLOB)``), decoded here so bad UTF-8 names its row."""
    if value is None or isinstance(value, str):
        return value
    return bytes(value).decode("utf-8")


def _damaged_run(row: tuple[Any, ...], why: str) -> Run:
    """A run that does not decode, with whatever of its analysis, time and parameters still reads."""
    run_id, created, analysis, params = row[:4]

    def salvage(read, fallback):
        try:
            return read()
        except Exception:
            return fallback

    params_ = salvage(lambda: json.loads(_text(params)), {})
    return Run(int(run_id), salvage(lambda: float(created), 0.0), salvage(lambda: _text(analysis), "?") or "?",
               params_ if isinstance(params_, dict) else {}, None, why)


def check_same_model(session: Session, info: dict[str, Any]) -> None:
    """A session holds one model: refuse to mix in runs of another (or of other weights)."""
    model = session.model
    if (model.get("spec"), model.get("revision")) != (info.get("spec"), info.get("revision")):
        raise BadInput(
            f"{session.path} holds runs of {model.get('spec')} ({model.get('revision')}); "
            f"this run loads {info.get('spec')} ({info.get('revision')}). Use another session file"
        )
