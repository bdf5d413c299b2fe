"""The real binary in a real terminal (tmux): ctrl+q quits within seconds while a run is busy, and
Ctrl-C stops a `workbench run` while it is still preparing its inputs, with exit 130."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

EXE = os.path.join(os.path.dirname(sys.executable), "workbench")
BIG = 100_000  # pairs: minutes of sampling and tokenising on a small machine, a few hundred MB


@pytest.fixture
def tmux(tmp_path):
    """A tmux server of the test's own, and the environment of a user with a fresh cache. The socket
    is named by the test's own temp folder: both tests' names end alike, and a new server on the
    name of one still shutting down started no session (an empty screen for 120 s)."""
    socket = f"wb-quit-{os.getpid()}-{tmp_path.name}"

    def run(*args: str) -> str:
        return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=False).stdout

    run.env = f"WORKBENCH_CACHE={tmp_path} HF_HUB_OFFLINE=1 TERM=xterm-256color"
    yield run
    run("kill-server")


def _wait(tmux, needle: str, timeout: float) -> tuple[str, float]:
    """The screen once ``needle`` is on it, and the seconds that took."""
    start = time.monotonic()
    screen = ""
    while time.monotonic() - start < timeout:
        screen = tmux("capture-pane", "-p", "-t", "t")
        if needle in screen:
            return screen, time.monotonic() - start
        time.sleep(0.1)
    raise AssertionError(f"{needle!r} not on screen after {timeout} s:\n{screen}")


def test_ctrl_q_quits_within_seconds_while_a_run_prepares_its_inputs(tmux, tmp_path):
    """Defect: ctrl+q blanked the screen but the process ran on (and ignored Ctrl-C) until the
    run's thread had finished."""
    path = tmp_path / "big.wbs"
    subprocess.run([EXE, "run", "patch", "--model", "toy:ioi", "--task", "ioi", "--n", "4", "--site", "head_out",
                    "--session", str(path)], check=True, capture_output=True, env={**os.environ, "HF_HUB_OFFLINE": "1"})
    with sqlite3.connect(path) as db:  # the stored run as if it had been asked for with a large n
        db.execute("UPDATE runs SET params = json_set(params, '$.n', ?)", (BIG,))
    tmux("new-session", "-d", "-s", "t", "-x", "80", "-y", "24",
         f"env {tmux.env} {EXE} --session {path}; echo EXIT=$?; sleep 60")
    _wait(tmux, "run 1 (stored)", 120)  # its controls are back, n included
    tmux("send-keys", "-t", "t", "C-r")
    _wait(tmux, "sampling pairs", 120)  # the stage and its count, not --%
    tmux("send-keys", "-t", "t", "C-q")
    screen, took = _wait(tmux, "EXIT=", 30)
    assert took < 5 and "EXIT=0" in screen, (took, screen)
    from sessions.store import Session

    with Session.open(path) as s:  # the file is whole: its one run, readable
        runs = s.runs()
    assert [r.analysis for r in runs] == ["patch"] and runs[0].params["n"] == BIG


def test_ctrl_c_stops_a_cli_run_while_it_prepares_its_inputs(tmux):
    tmux("new-session", "-d", "-s", "t", "-x", "100", "-y", "10",
         f"env {tmux.env} {EXE} run patch --model toy:ioi --task ioi --n {BIG} --site head_out; echo EXIT=$?; sleep 60")
    _wait(tmux, "patch: sampling pairs", 120)  # progress on the terminal, from the start
    tmux("send-keys", "-t", "t", "C-c")
    screen, took = _wait(tmux, "EXIT=", 30)
    assert took < 3 and "EXIT=130" in screen and "Traceback" not in screen, (took, screen)
