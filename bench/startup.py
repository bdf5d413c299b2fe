"""Time to first frame and to the first DLA result of `workbench` on toy:ioi, from a fresh process
in a real terminal (tmux, 80x24), polling the screen every 20 ms.

    .venv/bin/python bench/startup.py [--repeats 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import time

EXE = os.path.join(os.path.dirname(sys.executable), "workbench")


def once(name: str) -> tuple[float, float]:
    # A tmux server of its own per run: reusing one races with the previous server's shutdown.
    tmux = ["tmux", "-L", name]
    t0 = time.perf_counter()
    subprocess.run([*tmux, "new-session", "-d", "-s", name, "-x", "80", "-y", "24", f"{EXE}; sleep 30"], check=True)
    first = None
    try:
        while time.perf_counter() - t0 < 120:
            screen = subprocess.run([*tmux, "capture-pane", "-p", "-t", name], capture_output=True, text=True).stdout
            if first is None and "interpretability workbench" in screen:
                first = time.perf_counter() - t0
            if "L1ATTN" in screen:
                return first, time.perf_counter() - t0
            time.sleep(0.02)
        raise RuntimeError(f"no DLA result within 120 s; the screen:\n{screen}")
    finally:
        subprocess.run([*tmux, "kill-server"])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    runs = [once(f"wb-startup-{os.getpid()}-{i}") for i in range(args.repeats)]
    frame, dla = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
    print(f"workbench on toy:ioi, 80x24, median of {args.repeats} fresh processes")
    print(f"first frame           {frame:6.2f} s   (before torch is imported)")
    print(f"first DLA result      {dla:6.2f} s   (model loaded in a worker, DLA run, table drawn)")


if __name__ == "__main__":
    main()
