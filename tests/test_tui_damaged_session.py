"""The app opens a session file holding one damaged run: History marks it, Enter on it explains,
the other runs reopen, and the file is not changed by looking."""

from __future__ import annotations

import hashlib
import sqlite3

from pilot import wait_for
from textual.widgets import DataTable

from analyses.results import Table
from screens.widgets import ErrorDialog
from sessions.store import Session
from sessions.workspace import open_workspaces
from workbench.app import WorkbenchApp


def _session_with_a_damaged_run(path) -> list[int]:
    with Session.create(path, {"spec": "toy:ioi", "revision": "r", "device": "cpu", "dtype": "float32"}) as s:
        ids = [s.append_run("dla", {"prompt": f"When Mary and John went {n}", "answer": " Mary", "by": "head"},
                            Table("dla", ["embed", "L0H1"], {"value": [0.5 + n, -1.0]}, {"logit": 1.5 + n}))
               for n in range(3)]
    conn = sqlite3.connect(path)
    with conn:
        conn.execute("UPDATE runs SET body = CAST(? AS TEXT) WHERE id = ?", (b"\xff damaged", ids[2]))
    conn.close()
    return ids


async def test_a_session_with_a_damaged_run_opens_and_history_explains_it(tmp_path):
    """Defect: one run's damaged blob made the whole session refuse to open."""
    path = tmp_path / "s.wbs"
    ids = _session_with_a_damaged_run(path)
    before = hashlib.sha256(path.read_bytes()).hexdigest()
    app = WorkbenchApp("toy:ioi", device="cpu", workspaces=open_workspaces(None, [str(path)], "toy:ioi"))
    async with app.run_test(size=(100, 32)) as pilot:
        await wait_for(pilot, lambda: app._started)
        await pilot.pause()
        assert app._shown is app.ws.runs[1]  # the newest run that reads, not the damaged one
        assert any(f"run {ids[2]} is damaged" in n.message for n in app._notifications)
        app.action_show_tab("history_tab")
        history = app.query_one("#history", DataTable)
        history.focus()
        await pilot.pause()
        assert history.row_count == 3 and "DAMAGED" in str(history.get_row_at(2)[3])
        history.move_cursor(row=2)
        await pilot.press("enter")
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        assert f"Run {ids[2]} (dla) is damaged" in app.screen.message and "UnicodeDecodeError" in app.screen.message
        await pilot.press("escape")
        await pilot.press("f4")  # exporting it says the same, and writes nothing
        await wait_for(pilot, lambda: isinstance(app.screen, ErrorDialog))
        await pilot.press("escape")
        history.move_cursor(row=0)
        await pilot.press("enter")
        await pilot.pause()
        assert app._shown is app.ws.runs[0] and not isinstance(app.screen, ErrorDialog)
    assert hashlib.sha256(path.read_bytes()).hexdigest() == before
