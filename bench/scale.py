"""The scale table: random checkpoints of real shapes, built with ``build_checkpoint`` (the toy
word vocabulary, so embeddings are small; every layer has the real shape).

For each model, in a fresh process (so that its peak RSS is its own): load, DLA by neuron (by
layer for Mamba, which has no neurons) on 20 tokens, an activation-patching sweep on 20 tokens
(head_out x position; Mamba: out_proj x position), and EAP over every edge (one prompt pair of
20 tokens). Wall time and CPU time of each step, RSS after loading, peak RSS, and the weights'
size. ``--positions`` restricts the sweep to some positions (the table says which, and
estimates the full sweep from them: its non-trivial positions times the mean cost per position).

    .venv/bin/python -m bench.scale [--models gpt2-small,llama-1b,mamba-48] [--device cpu]
        [--positions llama-1b=4,9,14,19] [--dir /tmp/scale-checkpoints]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

from bench.common import peak_rss_mb as _peak_mb
from bench.common import rss_mb as _rss_mb
from bench.common import timed as measured

SHAPES = {
    "gpt2-small": ("gpt2", {"d_model": 768, "n_layers": 12, "n_heads": 12, "n_ctx": 1024}),
    # Llama-3.2-1B: d 2048, 16 layers, 32 query heads over 8 key/value heads, d_mlp 8192.
    "llama-1b": ("llama", {"d_model": 2048, "n_layers": 16, "n_heads": 32, "num_key_value_heads": 8,
                           "intermediate_size": 8192, "n_ctx": 2048, "tie_word_embeddings": True}),
    # Mamba-370m-like depth: 48 layers of d 1024 (d_inner 2048, state 16).
    "mamba-48": ("mamba", {"d_model": 1024, "n_layers": 48, "state_size": 16}),
}
TOKENS = 20
DIFF_AT = 3  # the corrupted prompt differs from the clean one at this position


def one(name: str, path: str, device: str, positions: list[int] | None) -> dict:
    """Measure one model in this process; returns the row of the table."""
    import torch

    from analyses.attribution import edge_attribution
    from analyses.dla import dla
    from analyses.patching import activation_patching
    from sessions.loading import load

    def timed(fn):
        t = measured(fn, device=device)
        return t.result, t.wall, t.cpu

    row: dict = {"model": name, "rss_start_mb": _rss_mb()}
    lm, row["load_s"], _ = timed(lambda: load(path, device=device))
    hm = lm.hooked
    row["weights_mb"] = sum(p.numel() * p.element_size() for p in hm.model.parameters()) / 2**20
    row["params_m"] = sum(p.numel() for p in hm.model.parameters()) / 1e6
    row["rss_loaded_mb"] = _rss_mb()
    vocab = hm.shape.d_vocab
    g = torch.Generator().manual_seed(0)
    clean = torch.randint(4, vocab, (1, TOKENS), generator=g)
    corrupt = clean.clone()
    corrupt[0, DIFF_AT] = 4 + (corrupt[0, DIFF_AT] - 3) % (vocab - 4)
    answer, distractor = torch.tensor([5]), torch.tensor([6])
    by = "layer" if hm.shape.family == "mamba" else "neuron"
    table, row["dla_s"], row["dla_cpu_s"] = timed(lambda: dla(hm, clean[0].tolist(), 5, 6, by=by))
    row["dla_by"], row["dla_rows"] = by, len(table.labels)
    row["peak_after_dla_mb"] = _peak_mb()
    site = "out_proj" if hm.shape.family == "mamba" else "head_out"
    grid, row["sweep_s"], row["sweep_cpu_s"] = timed(
        lambda: activation_patching(hm, clean, corrupt, answer, distractor, site, positions=positions))
    row["sweep_site"] = site
    row["sweep_cells"] = grid.meta["cells_done"]
    row["sweep_positions"] = "all" if positions is None else ",".join(map(str, positions))
    if positions is not None:  # positions before DIFF_AT cost nothing; the rest about alike
        live = [p for p in positions if p >= DIFF_AT]
        row["sweep_full_est_s"] = row["sweep_s"] / max(1, len(live)) * (TOKENS - DIFF_AT)
        row["sweep_full_est_cpu_s"] = row["sweep_cpu_s"] / max(1, len(live)) * (TOKENS - DIFF_AT)
    row["peak_after_sweep_mb"] = _peak_mb()
    eap, row["eap_s"], row["eap_cpu_s"] = timed(lambda: edge_attribution(hm, clean, corrupt, answer, distractor))
    row["eap_edges"] = len(eap.labels)
    _, row["forward_s"], _ = timed(lambda: hm.run(clean))
    row["peak_mb"] = _peak_mb()
    return row


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(SHAPES))
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--dir", default="/tmp/scale-checkpoints")
    ap.add_argument("--positions", action="append", default=[], help="MODEL=p,p,... sweep only these positions")
    ap.add_argument("--one", help=argparse.SUPPRESS)
    args = ap.parse_args()
    chosen = {k: [int(p) for p in v.split(",")] for k, v in (a.split("=", 1) for a in args.positions)}
    if args.one:
        print(json.dumps(one(args.one, str(Path(args.dir) / args.one), args.device, chosen.get(args.one))))
        return
    rows = []
    for name in args.models.split(","):
        path = Path(args.dir) / name
        if not (path / "config.json").is_file():
            from analyses.toys.checkpoints import build_checkpoint

            family, shape = SHAPES[name]
            t0 = time.perf_counter()
            build_checkpoint(path, family, **shape)
            print(f"built {name} in {time.perf_counter() - t0:.1f} s", file=sys.stderr)
        cmd = [sys.executable, "-m", "bench.scale", "--one", name, "--device", args.device, "--dir", args.dir]
        cmd += [f"--positions={a}" for a in args.positions]
        out = subprocess.run(cmd, capture_output=True, text=True, env=dict(os.environ), check=False)
        if out.returncode:
            print(f"{name}: failed\n{out.stderr[-2000:]}", file=sys.stderr)
            continue
        rows.append(json.loads(out.stdout.strip().splitlines()[-1]))
        print(json.dumps(rows[-1]), file=sys.stderr)
    import torch

    print(f"device {args.device}, torch {torch.__version__}, {torch.get_num_threads()} threads, {TOKENS} tokens, "
          "one prompt pair; times wall (CPU) in s, memory in MB; RSS: after loading (safetensors are "
          "mapped, read on first use), peak RSS: the whole run's")
    print(f"{'model':11} {'params':>7} {'weights':>8} {'load':>6} {'RSS':>7} {'DLA':>13} {'sweep':>22} "
          f"{'EAP':>13} {'fwd':>6} {'peak RSS':>9} {'peak/w':>6}")
    for r in rows:
        sweep = f"{r['sweep_s']:.1f} ({r['sweep_cpu_s']:.1f}) {r['sweep_cells']}c"
        print(f"{r['model']:11} {r['params_m']:6.0f}M {r['weights_mb']:8.0f} {r['load_s']:6.1f} {r['rss_loaded_mb']:7.0f} "
              f"{r['dla_s']:5.2f} ({r['dla_cpu_s']:5.2f}) {sweep:>22} {r['eap_s']:5.2f} ({r['eap_cpu_s']:5.2f}) "
              f"{r['forward_s']:6.2f} {r['peak_mb']:9.0f} {r['peak_mb'] / r['weights_mb']:6.2f}")
        if "sweep_full_est_s" in r:
            print(f"{'':11} sweep on positions {r['sweep_positions']} only; the whole grid: about "
                  f"{r['sweep_full_est_s']:.0f} s wall ({r['sweep_full_est_cpu_s']:.0f} s CPU)")


if __name__ == "__main__":
    main()
