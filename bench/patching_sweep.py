"""Activation patching: the batched engine vs the one-forward-per-cell loop, in one run.

head_out x position sweep (every head at every position of every layer: 12 x 20 x 12 = 2,880
cells) on a GPT-2-small-shaped random model, 20-token prompts, one prompt pair. The batched sweep
runs in full; the naive loop costs one whole forward per cell, so it is timed on a random sample
of cells and scaled to the full grid (each of its cells costs the same), and the sampled cells
are checked to agree with the batched grid.

Times are wall clock and, on CPU, also this process's CPU time: on a machine shared with other
work the CPU-time ratio is the stable one (the wall-clock one moves with the others' load).
Run from the repository root, so that it measures this checkout's code:

    .venv/bin/python -m bench.patching_sweep [--device cpu|cuda] [--sample 48]
"""

from __future__ import annotations

import argparse
import random

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from analyses.models import hooked
from analyses.patching import activation_patching
from bench.common import timed


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--sample", type=int, default=48, help="naive-loop cells to time")
    ap.add_argument("--rows", type=int, default=256, help="patched rows per batched forward")
    args = ap.parse_args()
    torch.manual_seed(0)
    config = GPT2Config()
    hm = hooked(GPT2LMHeadModel(config).eval().to(args.device))
    clean = torch.randint(0, config.vocab_size, (1, args.tokens))
    corrupt = clean.clone()
    corrupt[0, 3] = (corrupt[0, 3] + 1) % config.vocab_size
    answer, distractor = torch.tensor([11]), torch.tensor([13])
    cells = config.n_layer * args.tokens * config.n_head

    t = timed(lambda: activation_patching(hm, clean, corrupt, answer, distractor, "head_out",
                                          rows_per_forward=args.rows), device=args.device)
    grid, batched, batched_cpu = t.result, t.wall, t.cpu

    # The naive loop, on a sample of cells: one full forward per cell, as TransformerLens does.
    from analyses.models.hooks import Intervention

    base = hm.run(clean.to(args.device), capture=[f"blocks.{layer}.attn.hook_z" for layer in range(config.n_layer)])
    rng = random.Random(0)
    sample = rng.sample([(layer, p, h) for layer in range(config.n_layer) for p in range(args.tokens) for h in range(config.n_head)], args.sample)

    def naive_loop() -> float:
        worst = 0.0
        for layer, pos, head in sample:
            name = f"blocks.{layer}.attn.hook_z"
            out = hm.run(corrupt, interventions=[Intervention(name, value=base.cache[name], pos=pos, head=head)])
            final = out.logits[0, -1]
            value = float(final[answer[0]] - final[distractor[0]])
            worst = max(worst, abs(value - grid.values[layer][pos][head]))
        return worst

    t = timed(naive_loop, device=args.device)
    worst, per_cell = t.result, t.wall / args.sample
    naive, naive_cpu = per_cell * cells, t.cpu / args.sample * cells
    print(f"head_out x pos sweep, GPT-2-small shape, {args.tokens} tokens, {cells} cells, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"batched engine        {batched:8.2f} s  ({batched / cells * 1e3:.2f} ms per cell)")
    print(f"naive loop            {naive:8.2f} s  ({per_cell * 1e3:.2f} ms per cell, timed on {args.sample} sampled cells)")
    print(f"speed-up              {naive / batched:8.2f}x   (max |batched - naive| on the sample: {worst:.2e})")
    if args.device == "cpu":
        print(f"CPU time              batched {batched_cpu:.2f} s, naive {naive_cpu:.2f} s: "
              f"speed-up {naive_cpu / batched_cpu:.2f}x")


if __name__ == "__main__":
    main()
