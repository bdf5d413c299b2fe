"""Progress and cancel for input preparation: sampling a task's examples or pairs, reading a pairs
file, tokenising them. For a large ``n`` this alone takes minutes, before an analysis's own loop
(which reports its progress and checks for a stop between batches) has started.

The front end that runs an analysis says where progress goes and how a stop is asked for, once,
with ``watching``; the preparation loops call ``step`` on every item, whoever runs them and
whether or not their analysis is cancellable. With nothing watching, ``step`` does nothing (the
CLI, where Ctrl-C interrupts; training)."""

from __future__ import annotations

import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass

from analyses.errors import Cancelled

EVERY = 256  # items between two looks at the watch: a look costs a clock read and a call
SMALL = 4 * EVERY  # preparations smaller than this are quick: no progress reports
INTERVAL = 0.1  # seconds between two progress reports

Report = Callable[[str, int, int], None]  # (what is being prepared, items done, items in all)


@dataclass
class _Watch:
    report: Report | None
    should_stop: Callable[[], bool] | None
    last: float = 0.0


_watch: ContextVar[_Watch | None] = ContextVar("preparation_watch", default=None)


@contextmanager
def watching(report: Report | None = None, should_stop: Callable[[], bool] | None = None) -> Iterator[None]:
    """Within this block (in this thread), input preparation reports to ``report`` and stops with
    ``Cancelled`` once ``should_stop()`` is true."""
    token = _watch.set(_Watch(report, should_stop))
    try:
        yield
    finally:
        _watch.reset(token)


def step(done: int, total: int, what: str) -> None:
    """One item of ``total`` prepared: every EVERY items, raise ``Cancelled`` when a stop was asked
    for, and report progress at most every INTERVAL seconds."""
    if done % EVERY:
        return
    watch = _watch.get()
    if watch is None:
        return
    if watch.should_stop is not None and watch.should_stop():
        raise Cancelled(f"cancelled while {what}")
    now = time.monotonic()
    if watch.report is not None and total >= SMALL and now - watch.last >= INTERVAL:
        watch.last = now
        watch.report(what, done, total)
