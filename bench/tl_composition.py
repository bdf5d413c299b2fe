"""Composition scores: ours (analyses.talking_heads.composition) against TransformerLens's all_composition_scores.

TransformerLens is not a dependency of the workbench; give this script a Python that has it
(a scratch venv outside the repo, e.g. ``python3 -m venv /tmp/tlvenv && /tmp/tlvenv/bin/pip
install torch==2.13.0 transformer_lens``). TL runs in that interpreter as a subprocess on the
same checkpoint; both sides are timed in this one run and the ratio is printed.

    PYTHONPATH=. .venv/bin/python bench/tl_composition.py --tl-python /tmp/tlvenv/bin/python [--small] [--write-fixture]

``--write-fixture`` rewrites tests/analyses/data/tl_composition.json: TL's scores on the tiny
deterministic checkpoints the test rebuilds, so the parity test runs without TL installed.
``--small`` also times a GPT-2-small-shaped model (12 layers, 12 heads, d_model 768, random weights).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import torch

from analyses.talking_heads.composition import composition_scores, head_weights
from analyses.toys.checkpoints import build_checkpoint
from bench.common import timed
from sessions.loading import load

FIXTURE = Path(__file__).resolve().parent.parent / "tests" / "analyses" / "data" / "tl_composition.json"
# The checkpoints of the fixture: name -> (family, build options). Same arguments, same weights.
TINY = {
    "gpt2": ("gpt2", {"seed": 3, "jitter": 0.1, "n_layers": 3}),
    "neox": ("gpt_neox", {"seed": 4, "jitter": 0.1, "n_layers": 3}),  # parallel residual (the NeoX default)
    "llama-gqa": ("llama", {"seed": 5, "jitter": 0.1, "n_layers": 3, "num_key_value_heads": 2}),
}
# What TL runs: boot the checkpoint, optionally apply HookedTransformer's processing, score and time.
TL_SCRIPT = r"""
import json, os, sys, time
os.environ["HF_HUB_OFFLINE"] = "1"
import torch
torch.set_num_threads(1)
from transformer_lens.model_bridge import TransformerBridge
path, compat = sys.argv[1], sys.argv[2] == "compat"
bridge = TransformerBridge.boot_transformers(path, device="cpu")
if compat:
    bridge.enable_compatibility_mode(disable_warnings=True)
out = {}
for mode in "QKV":
    bridge.all_composition_scores(mode)  # warm-up
    t = time.perf_counter()
    scores = bridge.all_composition_scores(mode).scores
    out[mode + "_seconds"] = time.perf_counter() - t
    out[mode] = scores.detach().float().tolist()
print(json.dumps(out))
"""


def tl_scores(tl_python: str, path: Path, processing: str) -> dict:
    env = {**os.environ, "OMP_NUM_THREADS": "1", "HF_HUB_OFFLINE": "1"}
    done = subprocess.run([tl_python, "-c", TL_SCRIPT, str(path), processing], capture_output=True, text=True,
                          env=env, check=False)
    if done.returncode != 0:
        sys.exit(f"TransformerLens failed on {path}:\n{done.stderr[-2000:]}")
    return json.loads(done.stdout.strip().splitlines()[-1])


def ours(path: Path, fold: str) -> tuple[dict, dict]:
    lm = load(str(path), device="cpu")
    scores, seconds = {}, {}
    for mode in "QKV":
        t = timed(lambda: composition_scores(head_weights(lm.hooked, fold), mode), warmup=1)
        scores[mode], seconds[mode] = t.result, t.wall
    return scores, seconds


def compare(tl_python: str, path: Path, label: str) -> dict:
    """Max |ours - TL| per mode, for TL's processed weights (fold=tl) and raw weights (fold=raw)."""
    report = {}
    for processing, fold in (("compat", "tl"), ("raw", "raw")):
        tl = tl_scores(tl_python, path, processing)
        mine, secs = ours(path, fold)
        for mode in "QKV":
            dev = float((mine[mode] - torch.tensor(tl[mode])).abs().max())
            report[f"{processing}/{mode}"] = tl
            print(f"{label:<10} {processing:<7} {mode}: max |ours - TL| = {dev:.2e}   "
                  f"ours {secs[mode]:.3f} s, TL {tl[mode + '_seconds']:.3f} s, TL/ours = {tl[mode + '_seconds'] / secs[mode]:.1f}x")
    return report


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--tl-python", required=True, help="a Python interpreter with transformer_lens installed")
    ap.add_argument("--small", action="store_true", help="also time a GPT-2-small-shaped model")
    ap.add_argument("--write-fixture", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    with tempfile.TemporaryDirectory() as tmp:
        fixture = {}
        for name, (family, opts) in TINY.items():
            path = build_checkpoint(Path(tmp) / name, family, **opts)
            compare(args.tl_python, path, name)
            entry = {"family": family, "build": opts}
            for processing in ("compat", "raw"):
                tl = tl_scores(args.tl_python, path, processing)
                entry[processing] = {m: tl[m] for m in "QKV"}
            fixture[name] = entry
        if args.write_fixture:
            FIXTURE.parent.mkdir(parents=True, exist_ok=True)
            FIXTURE.write_text(json.dumps(fixture, indent=None) + "\n")
            print(f"wrote {FIXTURE}")
        if args.small:
            path = build_checkpoint(Path(tmp) / "small", "gpt2", seed=0, jitter=0.02, d_model=768, n_layers=12,
                                    n_heads=12)
            compare(args.tl_python, path, "gpt2-small")


if __name__ == "__main__":
    main()
