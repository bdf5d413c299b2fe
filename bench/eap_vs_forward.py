"""Edge attribution over every edge vs one forward pass, in one run.

GPT-2-small shape (12 layers x 12 heads: 32,000+ edges), random weights, a batch of prompt pairs
of 20 tokens. EAP is one capturing forward (corrupted) and one forward + backward with per-head
q/k/v inputs (its forward is the clean run); EAP-IG runs both prompts and one forward + backward
per step. Those runs unembed only the last token's answer and distractor columns; "one forward"
is a plain run of the same batch with all logits. A run with every edge patched is what each
faithfulness and path-patching measurement costs. Printed as ratios to that forward.

    .venv/bin/python -m bench.eap_vs_forward [--device cpu|cuda] [--batch 8] [--ig 5]
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from analyses.attribution import EdgeGraph, edge_attribution, run_with_edges_patched
from analyses.models import hooked
from bench.common import timed as measured


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--batch", type=int, default=8)
    ap.add_argument("--tokens", type=int, default=20)
    ap.add_argument("--ig", type=int, default=5)
    args = ap.parse_args()
    torch.manual_seed(0)
    config = GPT2Config()
    hm = hooked(GPT2LMHeadModel(config).eval().to(args.device))
    clean = torch.randint(0, config.vocab_size, (args.batch, args.tokens))
    corrupt = clean.clone()
    corrupt[:, 3] = (corrupt[:, 3] + 1) % config.vocab_size
    answer, distractor = torch.full((args.batch,), 11), torch.full((args.batch,), 13)

    cpu: dict[str, float] = {}

    def timed(fn, repeats=3, key="") -> float:
        t = measured(fn, repeats, warmup=1, device=args.device)
        cpu[key] = t.cpu
        return t.wall

    forward = timed(lambda: hm.run(clean), key="forward")
    eap = timed(lambda: edge_attribution(hm, clean, corrupt, answer, distractor), repeats=1, key="eap")
    ig = timed(lambda: edge_attribution(hm, clean, corrupt, answer, distractor, ig_steps=args.ig), repeats=1, key="ig")
    graph = EdgeGraph(hm)
    source = hm.run(corrupt, capture=graph.writer_hooks()).cache
    patched_run = timed(lambda: run_with_edges_patched(hm, clean, source, graph.allowed, graph), key="patched")
    edges = int(graph.allowed.sum())
    print(f"GPT-2-small shape, {edges} edges, batch {args.batch} x {args.tokens} tokens, device {args.device}, "
          f"torch {torch.__version__}, {torch.get_num_threads()} threads")
    print(f"one forward           {forward * 1e3:9.1f} ms")
    print(f"EAP, all edges        {eap * 1e3:9.1f} ms   = {eap / forward:5.1f} forwards")
    print(f"EAP-IG, {args.ig} steps      {ig * 1e3:9.1f} ms   = {ig / forward:5.1f} forwards")
    print(f"every edge patched    {patched_run * 1e3:9.1f} ms   = {patched_run / forward:5.1f} forwards"
          "   (one faithfulness / path-patching run)")
    if args.device == "cpu":  # CPU time: the stable measure on a machine shared with other work
        f = cpu["forward"]
        print(f"CPU time, in forwards: EAP {cpu['eap'] / f:.1f}, EAP-IG {cpu['ig'] / f:.1f} "
              f"({cpu['ig'] / f / args.ig:.1f} per step), every edge patched {cpu['patched'] / f:.1f}")


if __name__ == "__main__":
    main()
