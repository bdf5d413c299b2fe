"""The real `workbench` binary in a real terminal (tmux): type a prompt, run DLA into a new
session, save, quit, reopen the session, and see the same numbers without re-running the model."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import time
from functools import partial

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

EXE = os.path.join(os.path.dirname(sys.executable), "workbench")


SOCKET = f"wb-e2e-{os.getpid()}"  # a tmux server of our own, never shared with the user's


@pytest.fixture(autouse=True)
def _own_server(request):
    """A server per test: one test's `kill-server` races with the next test's first command."""
    global SOCKET
    SOCKET = f"wb-e2e-{os.getpid()}-{request.node.name.split('_')[1]}"


def _tmux(*args: str) -> str:
    return subprocess.run(["tmux", "-L", SOCKET, *args], capture_output=True, text=True, check=False).stdout


def _screen_when(session: str, needle: str, timeout: float = 180, times: int = 1, gone: bool = False) -> str:
    """The screen once ``needle`` is on it (``times`` times, or no longer, with ``gone``) and the
    drawing has settled (two equal captures)."""
    deadline = time.monotonic() + timeout
    previous = None
    while time.monotonic() < deadline:
        screen = _tmux("capture-pane", "-p", "-t", session)
        if (needle not in screen if gone else screen.count(needle) >= times) and screen == previous:
            return screen
        previous = screen
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never appeared; screen:\n{screen}")


def _table(screen: str) -> list[str]:
    return [line.strip() for line in screen.splitlines() if line.strip().startswith(("embed", "L0", "L1", "bias"))]


def _palette(session: str, command: str) -> None:
    """Run a palette command by typing its title, as a person would."""
    _tmux("send-keys", "-t", session, "C-p")
    _screen_when(session, "Search for commands")
    _tmux("send-keys", "-t", session, "-l", command)
    _screen_when(session, command, times=2)  # typed, and offered as a match
    _tmux("send-keys", "-t", session, "Enter")
    _screen_when(session, "Search for commands", gone=True)


def test_enter_a_prompt_run_save_quit_reopen(tmp_path):
    path = tmp_path / "e2e.wbs"
    name = f"wb-e2e-{os.getpid()}"
    env = f"WORKBENCH_CACHE={tmp_path} HF_HUB_OFFLINE=1 TERM=xterm-256color"
    try:
        _tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", f"env {env} {EXE} --session {path}; sleep 60")
        _screen_when(name, "interpretability workbench")  # the first frame
        _screen_when(name, "run 1 (saved)")  # the default model loaded and ran the default prompt
        _tmux("send-keys", "-t", name, "C-u")  # the prompt box has focus: clear it, type another
        _screen_when(name, "0 tokens:")  # a key binding (ctrl+u) may act after keys typed in the same burst
        _tmux("send-keys", "-t", name, "-l", "When John and Mary went to the store, Mary gave a drink to")
        _tmux("send-keys", "-t", name, "C-r")
        first = _screen_when(name, "run 2 (saved)")
        _tmux("send-keys", "-t", name, "C-s")
        _screen_when(name, "2 runs and 2 prompts saved")
        _tmux("send-keys", "-t", name, "C-q")
        time.sleep(1)
        _tmux("new-window", "-t", name, f"env {env} {EXE} --session {path}; sleep 60")  # same server, new process
        _tmux("kill-window", "-t", f"{name}:0")
        again = _screen_when(name, "run 2 (stored)")
    finally:
        _tmux("kill-server")
    assert "[When] [John] [and] [Mary]" in first, first
    assert _table(first) and _table(first) == _table(again)
    assert "logit" in again and "Traceback" not in again


def test_a_task_dataset_resample_ablation_eap_curve_and_attention_from_the_keyboard(tmp_path):
    """Open the IOI task as a 16-pair dataset, run resample-ablation patching and the EAP
    faithfulness curve on it, then one head's attention pattern: keys and the palette only."""
    path = tmp_path / "data.wbs"
    name = f"wb-e2e-data-{os.getpid()}"
    env = f"WORKBENCH_CACHE={tmp_path} HF_HUB_OFFLINE=1 TERM=xterm-256color"

    palette = partial(_palette, name)
    try:
        _tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24", f"env {env} {EXE} --session {path}; sleep 60")
        _screen_when(name, "run 1 (saved)")
        palette("Pairs from task ioi")
        palette("Analysis: activation patching")
        palette("Set direction = resample")
        _screen_when(name, "direction resamp")
        _tmux("send-keys", "-t", name, "C-r")
        patched = _screen_when(name, "run 2 (saved)")
        palette("Analysis: EAP faithfulness curve")
        _tmux("send-keys", "-t", name, "C-r")
        curve = _screen_when(name, "run 3 (saved)")
        palette("Analysis: attention pattern")
        _tmux("send-keys", "-t", name, "C-r")
        attention = _screen_when(name, "run 4 (saved)")
    finally:
        _tmux("kill-server")
    assert "pairs from task ioi" in patched and "L1H3" in patched, patched
    assert "faithfulness (pruned)" in curve and "edges kept" in curve, curve
    assert "0:When" in attention and "1:Mary" in attention, attention
    from sessions.store import Session

    with Session.open(path) as s:
        runs = s.runs()
    assert [r.analysis for r in runs] == ["dla", "patch", "eap-curve", "attention"]
    assert runs[1].params["direction"] == "resample" and runs[1].result.meta["n_pairs"] == 16
    assert runs[2].params["task"] == "ioi" and runs[2].result.x[-1] == runs[2].result.meta["edges_total"]


def test_composition_with_an_edit_in_force_from_the_keyboard(tmp_path):
    """Composition scores from the Model tab, then an SVD-component edit added from the palette:
    the next run applies it and the session records it; undo leaves the next run unedited."""
    path = tmp_path / "edits.wbs"
    name = f"wb-e2e-edits-{os.getpid()}"
    env = f"WORKBENCH_CACHE={tmp_path} HF_HUB_OFFLINE=1 TERM=xterm-256color"
    try:
        _tmux("new-session", "-d", "-s", name, "-x", "80", "-y", "24",
              f"env {env} {EXE} --model toy:recall --session {path}; sleep 60")
        _screen_when(name, "run 1 (saved)")
        _palette(name, "Analysis: composition scores")
        _tmux("send-keys", "-t", name, "C-r")
        scores = _screen_when(name, "run 2 (saved)")
        _palette(name, "Edit: add")
        _screen_when(name, "An edit for every run")
        _tmux("send-keys", "-t", name, "-l", "L0H1:ov:0=0")
        _tmux("send-keys", "-t", name, "Enter")
        _screen_when(name, "edits: L0H1:ov:0=0")
        _tmux("send-keys", "-t", name, "C-r")
        _screen_when(name, "run 3 (saved)")
        _palette(name, "Undo edit")
        _screen_when(name, "edits: L0H1", gone=True)
        _tmux("send-keys", "-t", name, "C-r")
        _screen_when(name, "run 4 (saved)")
    finally:
        _tmux("kill-server")
    assert "L0H0" in scores and "L1H3" in scores and "Traceback" not in scores, scores
    from sessions.store import Session

    with Session.open(path) as s:
        runs = s.runs()
    assert [r.analysis for r in runs] == ["dla", "composition", "composition", "composition"]
    assert runs[2].result.meta["edits"] == ["L0H1:ov:0=0"] and not runs[3].result.meta.get("edits")
    edited, plain = runs[2].result.values, runs[3].result.values
    assert edited[1] != plain[1] and edited[0] == plain[0]  # only sender L0H1's row moved
