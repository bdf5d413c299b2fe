"""What every benchmark measures, measured one way: wall and CPU time of a call (synchronising a
CUDA device around it), the process's resident memory now and its peak since a reset (Linux
/proc: VmRSS, VmHWM; ``reset_peak`` clears VmHWM so one process can measure several runs)."""

from __future__ import annotations

import ctypes
import gc
import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any


def _status_mb(key: str) -> float:
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(key + ":"):
                return int(line.split()[1]) / 1024
    except OSError:
        pass
    return float("nan")


def rss_mb() -> float:
    """Resident memory of this process now, in MB."""
    return _status_mb("VmRSS")


def peak_rss_mb() -> float:
    """Peak resident memory since the process started or since ``reset_peak``, in MB."""
    return _status_mb("VmHWM")


def reset_peak() -> None:
    """Collect garbage, hand freed heap back to the system, and restart the peak from now."""
    gc.collect()
    try:
        ctypes.CDLL("libc.so.6").malloc_trim(0)
    except OSError:
        pass
    try:
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass


def _sync(device: str | None) -> None:
    if device and str(device).startswith("cuda"):
        import torch

        torch.cuda.synchronize()


@dataclass
class Timing:
    """One measured call: its result, median wall and CPU seconds per call, and memory in MB (RSS
    before, peak during, both of the whole process)."""

    result: Any
    wall: float
    cpu: float
    rss_before: float
    peak: float

    @property
    def grown(self) -> float:
        """Peak memory beyond what the process held before the call."""
        return self.peak - self.rss_before


def timed(fn: Callable[[], Any], repeats: int = 1, warmup: int = 0, device: str | None = None,
          fresh_peak: bool = False) -> Timing:
    """Call ``fn`` ``warmup`` times, then ``repeats`` times measured; median wall and CPU seconds.
    ``fresh_peak``: the peak is this call's alone (``reset_peak`` first), not the process's."""
    for _ in range(warmup):
        fn()
    if fresh_peak:
        reset_peak()
    before = rss_mb()
    walls, cpus, out = [], [], None
    for _ in range(repeats):
        _sync(device)
        t0, c0 = time.perf_counter(), time.process_time()
        out = fn()
        _sync(device)
        walls.append(time.perf_counter() - t0)
        cpus.append(time.process_time() - c0)
    return Timing(out, statistics.median(walls), statistics.median(cpus), before, peak_rss_mb())
