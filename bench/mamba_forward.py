"""Hooked Mamba forward vs HF's own forward, and DLA before/after the fast scan.

A random Mamba-370m-shaped model (48 layers, d_model 1024, d_inner 2048, d_state 16, conv 4,
vocab 50280; ``--layers`` for fewer). "sequential" is the step-by-step scan that the adapter used
for every run before and still uses when ``hook_h`` is looked at; "fast" is the default now (in
place on CPU, the chunked log-depth scan on CUDA). HF's forward without mamba-ssm installed is
its reference PyTorch fallback; on CUDA with mamba-ssm it is the fused kernel. Every ratio is
measured in this one run.

    .venv/bin/python -m bench.mamba_forward [--layers 48] [--device cpu] [--tokens 14 128]
"""

from __future__ import annotations

import argparse

import torch
from transformers import MambaConfig, MambaForCausalLM

from analyses.dla import dla
from analyses.models import hooked, mamba
from analyses.models.hooks import Hooks
from bench.common import timed


FAST = mamba.selective_scan


def sequential(delta, A, B, u, C, dtype):
    """The scan as the adapter ran it before (and still does when hook_h is looked at)."""
    dA = torch.exp(delta[..., None] * A)
    dBu = delta[..., None] * B[:, :, None, :].float() * u[..., None].float()
    return mamba.MambaAdapter._scan_sequential(dA, dBu, C, dtype, "", Hooks())


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--layers", type=int, default=48)
    ap.add_argument("--tokens", type=int, nargs="+", default=[14, 128])
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--repeats", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    config = MambaConfig(hidden_size=1024, num_hidden_layers=args.layers, intermediate_size=2048, state_size=16,
                         vocab_size=50280, conv_kernel=4, time_step_rank=64)
    model = MambaForCausalLM(config).eval().to(args.device)
    hm = hooked(model)
    print(f"Mamba-370m shape ({args.layers} layers), random weights, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    print(f"{'batch':>5} {'tokens':>6}  {'HF forward':>10}  {'hooked fast':>11}  {'hooked seq.':>11}  "
          f"{'fast/HF':>7}  {'seq./HF':>7}  {'seq./fast':>9}")
    for batch in args.batch:
        for n in args.tokens:
            ids = torch.randint(0, config.vocab_size, (batch, n), device=args.device)
            with torch.no_grad():
                hf = timed(lambda ids=ids: model(ids), args.repeats, 2, args.device).wall
            t_fast = timed(lambda ids=ids: hm.run(ids), args.repeats, 2, args.device).wall
            mamba.selective_scan = sequential
            t_seq = timed(lambda ids=ids: hm.run(ids), args.repeats, 2, args.device).wall
            mamba.selective_scan = FAST
            print(f"{batch:>5} {n:>6}  {hf:>9.3f}s  {t_fast:>10.3f}s  {t_seq:>10.3f}s  {t_fast / hf:>7.2f}  "
                  f"{t_seq / hf:>7.2f}  {t_seq / t_fast:>9.2f}")
    ids = torch.randint(0, config.vocab_size, (14,)).tolist()
    d_fast = timed(lambda: dla(hm, ids, 5, 6), args.repeats, 2, args.device).wall
    mamba.selective_scan = sequential
    d_seq = timed(lambda: dla(hm, ids, 5, 6), args.repeats, 2, args.device).wall
    mamba.selective_scan = FAST
    print(f"DLA, 14-token prompt: sequential scan {d_seq:.3f}s, fast {d_fast:.3f}s, before/after {d_seq / d_fast:.2f}")


if __name__ == "__main__":
    main()
