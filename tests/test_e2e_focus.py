"""Focus is plain to see in the real binary (tmux, 80x24) in 256 colours and in 16: the focused
control's label is drawn reversed and the control underlined, in escapes a 16-colour terminal
keeps, never only a shade of background (issue 25, part 7)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import time

import pytest

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="tmux is not installed")

EXE = os.path.join(os.path.dirname(sys.executable), "workbench")
SGR = re.compile(r"\x1b\[([0-9;]*)m")


def _tmux(socket: str, *args: str) -> str:
    return subprocess.run(["tmux", "-L", socket, *args], capture_output=True, text=True, check=False).stdout


def _when(socket: str, needle: str, timeout: float = 180) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if needle in _tmux(socket, "capture-pane", "-p", "-t", "s"):
            return
        time.sleep(0.3)
    raise AssertionError(f"{needle!r} never appeared")


def _attributes(line: str, text: str) -> set[str]:
    """The SGR attributes (1 bold, 4 underline, 7 reverse) in force where ``text`` starts on an
    escaped line as ``capture-pane -e`` gives it."""
    on: set[str] = set()
    plain = ""
    for part in re.split(r"(\x1b\[[0-9;]*m)", line):
        match = SGR.fullmatch(part)
        if match is None:
            if text in plain + part:
                return on
            plain += part
            continue
        for code in (match.group(1) or "0").split(";"):
            if code in ("0", ""):
                on.clear()
            elif code in ("1", "4", "7"):
                on.add(code)
            elif code in ("22", "24", "27"):
                on.discard({"22": "1", "24": "4", "27": "7"}[code])
    raise AssertionError(f"{text!r} not on the line {line!r}")


def _line(screen: str, starts: str) -> str:
    return next(line for line in screen.splitlines() if SGR.sub("", line).startswith(starts))


@pytest.mark.parametrize("colours", ["256", "standard"])
def test_the_focused_control_is_marked_in_256_and_16_colours(tmp_path, colours):
    socket = f"wb-focus-{os.getpid()}-{colours}"
    env = (f"WORKBENCH_CACHE={tmp_path} HF_HUB_OFFLINE=1 TERM=xterm-256color TEXTUAL_COLOR_SYSTEM={colours} "
           f"XDG_CONFIG_HOME={tmp_path}")
    try:
        _tmux(socket, "new-session", "-d", "-s", "s", "-x", "80", "-y", "24", f"env {env} {EXE}; sleep 60")
        _when(socket, "L1ATTN")  # the first DLA result: the prompt box has the focus
        screen = _tmux(socket, "capture-pane", "-e", "-p", "-t", "s")
        assert {"1", "7"} <= _attributes(_line(screen, "prompt "), "prompt")  # its label reversed
        assert "4" in _attributes(_line(screen, "prompt "), "When Mary")  # the box underlined
        assert not {"4", "7"} & _attributes(_line(screen, "answer "), "answer")  # the others plain
        _tmux(socket, "send-keys", "-t", "s", "Tab")  # the mark follows the focus
        time.sleep(1)
        screen = _tmux(socket, "capture-pane", "-e", "-p", "-t", "s")
        assert "7" in _attributes(_line(screen, "answer "), "answer")
        assert "7" not in _attributes(_line(screen, "prompt "), "prompt")
        _tmux(socket, "send-keys", "-t", "s", "F10")  # the history table takes the focus
        _when(socket, "Enter: reopen")
        time.sleep(1)
        screen = _tmux(socket, "capture-pane", "-e", "-p", "-t", "s")
        assert "7" in _attributes(_line(screen, " run"), "run")  # its header reversed
    finally:
        _tmux(socket, "kill-server")
