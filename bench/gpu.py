"""The scale table on a GPU, with the CPU's figures beside it: GPT-2-small, a 1B Llama and a
48-layer Mamba shape (``bench.scale``'s random checkpoints), each step of ``bench.scale.one`` (load,
DLA, a head x position sweep, EAP over every edge, one forward) plus a corpus pass (256 IOI texts
through ``CorpusLoop`` in batches of 16, one forward each: the loop every corpus analysis runs),
and the peak CUDA memory. Each (model, device) runs in a fresh process.

    .venv/bin/python -m bench.gpu [--models gpt2-small,llama-1b,mamba-48] [--dir /tmp/scale-checkpoints]
        [--cpu-positions 4,9,14,19]      # the CPU's sweep on these positions only, the rest estimated

Without CUDA it says so and stops (exit 2): there is nothing to compare.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

CORPUS_TEXTS, CORPUS_BATCH = 256, 16


def corpus_pass(lm) -> tuple[float, int]:
    """Seconds to stream the corpus through the model, and the texts read."""
    from analyses.corpus import CorpusLoop, PromptSet
    from bench.common import timed

    hm = lm.hooked

    def run() -> int:
        loop = CorpusLoop.over(hm, lm.tokenizer, PromptSet(task="ioi", n=CORPUS_TEXTS, batch=CORPUS_BATCH))
        for _ in loop.map(lambda b: hm.run(b.ids.to(hm.model.device)).logits[:, -1].float().sum().item()):
            pass
        return loop.texts

    t = timed(run, device=str(hm.model.device))
    return t.wall, t.result


def one(name: str, path: str, device: str, positions: list[int] | None) -> dict:
    import torch

    from bench.scale import one as scale_row
    from sessions.loading import load

    if device.startswith("cuda"):
        torch.cuda.reset_peak_memory_stats()
    row = scale_row(name, path, device, positions)
    lm = load(path, device=device)
    row["parity"] = lm.info["parity"]["relative"]
    row["corpus_s"], row["corpus_texts"] = corpus_pass(lm)
    if device.startswith("cuda"):
        row["cuda_peak_mb"] = torch.cuda.max_memory_allocated() / 2**20
        row["gpu"] = torch.cuda.get_device_name()
    return row


def main() -> None:
    from bench.scale import SHAPES

    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(SHAPES))
    ap.add_argument("--dir", default="/tmp/scale-checkpoints")
    ap.add_argument("--cpu-positions", default="4,9,14,19", help="the CPU's sweep positions ('' for all)")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    ap.add_argument("--device", default="cuda", help=argparse.SUPPRESS)
    ap.add_argument("--positions", default="", help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.one:
        positions = [int(p) for p in args.positions.split(",")] if args.positions else None
        print(json.dumps(one(args.one, str(Path(args.dir) / args.one), args.device, positions)))
        return
    import torch

    if not torch.cuda.is_available():
        print("bench.gpu: no CUDA device here; run it on a GPU box (bench.scale gives the CPU table)", file=sys.stderr)
        sys.exit(2)
    rows: dict[tuple[str, str], dict] = {}
    for name in args.models.split(","):
        path = Path(args.dir) / name
        if not (path / "config.json").is_file():
            from analyses.toys.checkpoints import build_checkpoint

            family, shape = SHAPES[name]
            t0 = time.perf_counter()
            build_checkpoint(path, family, **shape)
            print(f"built {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        for device in ("cuda", "cpu"):
            cmd = [sys.executable, "-m", "bench.gpu", "--one", name, "--device", device, "--dir", args.dir,
                   f"--positions={args.cpu_positions if device == 'cpu' else ''}"]
            out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
            if out.returncode:
                print(f"{name} on {device}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
                continue
            rows[name, device] = json.loads(out.stdout.strip().splitlines()[-1])
            print(json.dumps(rows[name, device]), file=sys.stderr)
    gpu = next((r["gpu"] for (_, d), r in rows.items() if d == "cuda"), "?")
    print(f"GPU {gpu}, torch {torch.__version__} (CUDA {torch.version.cuda}); CPU {os.cpu_count()} cores. Seconds, "
          "GPU | CPU (ratio CPU/GPU); CPU sweep on positions "
          f"{args.cpu_positions or 'all'}, its whole grid estimated; corpus: {CORPUS_TEXTS} texts, "
          f"batch {CORPUS_BATCH}")
    steps = [("load", "load_s"), ("DLA", "dla_s"), ("sweep", "sweep_s"), ("EAP", "eap_s"), ("corpus", "corpus_s"),
             ("forward", "forward_s")]
    print(f"{'model':11} " + " ".join(f"{s:>24}" for s, _ in steps) + f" {'CUDA peak MB':>13} {'parity':>9}")
    for name in args.models.split(","):
        g, c = rows.get((name, "cuda")), rows.get((name, "cpu"))
        if g is None:
            continue
        cells = []
        for _, key in steps:
            ck = "sweep_full_est_s" if key == "sweep_s" and c and "sweep_full_est_s" in c else key
            cv = c.get(ck) if c else None
            ratio = f" ({cv / max(g[key], 1e-9):.0f}x)" if cv is not None else ""
            cells.append(f"{g[key]:.3f} | {cv:.2f}{ratio}" if cv is not None else f"{g[key]:.3f} | -")
        print(f"{name:11} " + " ".join(f"{x:>24}" for x in cells) + f" {g['cuda_peak_mb']:13.0f} {g['parity']:9.1e}")


if __name__ == "__main__":
    main()
