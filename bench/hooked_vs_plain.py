"""Hooked run (capturing every head's output, hook_z) vs the plain HF forward pass.

GPT-2-small shape (12 layers, 12 heads, d_model 768, vocab 50257), random weights, 20-token
prompts. Every timing is taken in this one run and printed as a ratio to the plain forward, so
the figures compare like with like on whatever machine runs it.

    .venv/bin/python -m bench.hooked_vs_plain [--device cpu|cuda] [--batch 1 8] [--repeats 20]
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from analyses.models import hooked
from bench.common import timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, nargs="+", default=[1, 8])
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--repeats", type=int, default=20)
    args = ap.parse_args()
    torch.manual_seed(0)
    config = GPT2Config()  # GPT-2 small
    model = GPT2LMHeadModel(config).eval().to(args.device)
    hm = hooked(model)
    heads = [f"blocks.{layer}.attn.hook_z" for layer in range(config.n_layer)]
    print(f"GPT-2-small shape, random weights, {args.tokens} tokens, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"{'batch':>5}  {'plain HF (sdpa)':>16}  {'plain HF (eager)':>17}  {'hooked, no capture':>19}  "
          f"{'hooked, capture hook_z':>23}  {'ratio z/sdpa':>12}  {'ratio z/eager':>13}")
    for batch in args.batch:
        ids = torch.randint(0, config.vocab_size, (batch, args.tokens), device=args.device)
        with torch.no_grad():
            model.config._attn_implementation = "sdpa"
            sdpa = timed(lambda: model(ids), args.repeats, 2, args.device).wall
            model.config._attn_implementation = "eager"
            eager = timed(lambda: model(ids), args.repeats, 2, args.device).wall
        bare = timed(lambda: hm.run(ids), args.repeats, 2, args.device).wall
        z = timed(lambda: hm.run(ids, capture=heads), args.repeats, 2, args.device).wall
        print(f"{batch:>5}  {sdpa * 1e3:>13.2f} ms  {eager * 1e3:>14.2f} ms  {bare * 1e3:>16.2f} ms  "
              f"{z * 1e3:>20.2f} ms  {z / sdpa:>11.2f}x  {z / eager:>12.2f}x")


if __name__ == "__main__":
    main()
