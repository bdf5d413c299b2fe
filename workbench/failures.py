"""What the app does when its own code fails, and how it quits. A mixin of ``WorkbenchApp``.

Textual ends the app on any exception that escapes a handler, an action, a timer or a worker
(``App._handle_exception``), and an unsaved session goes with it. Here, once the app is up, such
an exception becomes an error dialog (the traceback goes to a log file) and the app, its sessions
and their runs stay as they were. Before the first session is shown (a genuine startup failure)
and while the app is closing, Textual's handling stands: the app exits with the traceback.

Quitting never waits for a run: thread workers cannot be killed, and Python joins them at exit,
so ``run_tui`` ends the process itself once the app has closed its sessions; a second ctrl+q, or
a shutdown that hangs, ends it at once. Sessions are SQLite written in transactions, so nothing
saved is lost."""

from __future__ import annotations

import os
import sys
import threading
import time
import traceback
from pathlib import Path
from typing import NoReturn

from screens.widgets import ErrorDialog
from workbench.support import failure_text

QUIT_GRACE = 3.0  # seconds a quit may take before the process is ended regardless
STORM = 10  # failures within a second that mean the app cannot recover: exit as Textual would


def error_log() -> Path:
    """Where the tracebacks of failures shown in dialogs go."""
    from sessions.toys import cache_root

    return cache_root().parent / "errors.log"


def hard_exit(code: int, driver=None) -> NoReturn:
    """End the process now, threads and all, after giving the terminal back."""
    try:
        if driver is not None:
            driver.stop_application_mode()
    finally:
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(code)


class FailureActions:
    """Needs the app's ``_up`` (True once the first session is shown) and ``_active_job``."""

    exit_hard: bool = False  # the real app ends its process at quit, busy threads and all (never under Pilot)
    failures: tuple[str, ...] = ()  # the texts shown in dialogs
    watchdog: threading.Timer | None = None  # ends the process if a quit hangs
    _failure_times: tuple[float, ...] = ()
    _quitting: bool = False

    # ---- failures become dialogs --------------------------------------------------------------

    def _survives(self) -> bool:
        return getattr(self, "_up", False) and self.is_running and not self._quitting

    def _handle_exception(self, error: Exception) -> None:
        """Textual's last resort (it exits the app): a dialog instead, once the app is up."""
        cause = getattr(error, "error", None)  # a WorkerFailed carries the worker's exception
        if not self._survives() or not self._report_failure(cause if isinstance(cause, Exception) else error):
            super()._handle_exception(error)

    async def _dispatch_message(self, message) -> None:
        """The app's own handlers and callbacks (palette commands, bindings): a failure must not
        reach Textual's message loop, which stops at the first one."""
        try:
            await super()._dispatch_message(message)
        except Exception as error:
            if not self._survives() or not self._report_failure(error):
                raise

    async def run_action(self, action, default_namespace=None, namespaces=None) -> bool:
        """Every key binding's action, whichever widget it belongs to."""
        try:
            return await super().run_action(action, default_namespace, namespaces)
        except Exception as error:
            if not self._survives() or not self._report_failure(error):
                raise
            return True

    def _report_failure(self, error: Exception) -> bool:
        """Show ``error`` in a dialog and log its traceback; False when failures come too fast
        to be anything but a loop (then the app exits as Textual would)."""
        now = time.monotonic()
        self._failure_times = (*(t for t in self._failure_times if now - t < 1), now)
        if len(self._failure_times) > STORM:
            return False
        frames = traceback.extract_tb(error.__traceback__)
        where = f" (at {Path(frames[-1].filename).name}:{frames[-1].lineno}, {frames[-1].name})" if frames else ""
        log = error_log()
        try:
            log.parent.mkdir(parents=True, exist_ok=True)
            with log.open("a", encoding="utf-8") as f:
                f.write(f"--- {time.strftime('%Y-%m-%d %H:%M:%S')}\n")
                f.write("".join(traceback.format_exception(error)))
            logged = f"; the traceback is in {log}"
        except OSError:
            logged = ""
        text = (f"{failure_text(error)}{where}\n\nNothing was lost: the app and every open session are as they "
                f"were{logged}.")
        self.failures = (*self.failures, text)
        self.log.error(text)
        if not (isinstance(self.screen, ErrorDialog) and self.screen.message == text):
            self.push_screen(ErrorDialog(text))
        return True

    # ---- quitting without waiting for threads ------------------------------------------------------

    async def action_quit(self) -> None:
        """ctrl+q: stop the running analysis and quit at once; a second ctrl+q, or a quit that
        takes longer than QUIT_GRACE, ends the process there and then."""
        if self._active_job is not None:  # its thread stops at its next check instead of running on
            self._active_job.stop.set()
        if self._quitting and self.exit_hard:
            for ws in self.workspaces:
                ws.close()
            hard_exit(0, self._driver)
        self._quitting = True
        if self.exit_hard:
            self.watchdog = threading.Timer(QUIT_GRACE, hard_exit, (0, self._driver))
            self.watchdog.daemon = True
            self.watchdog.start()
        self.exit()
