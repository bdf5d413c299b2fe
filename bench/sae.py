"""SAE features streamed over a corpus at GPT-2-small shape: texts per second, and peak memory.

GPT-2-small shape (12 layers, d_model 768, vocab 50257, random weights: ``bench.neuron_capture``'s
model and synthetic right-padded corpus), a random ReLU SAE of ``--d-sae`` features (24,576 is
the size of the public GPT-2-small residual SAEs) on ``blocks.{layer}.hook_resid_pre``. Timed,
the methods taking turns, best of ``--repeats`` passes:

- forward: the hooked forward stopped after the SAE's layer, capturing its hook (the floor);
- sae-corpus: every feature's firing count and running top-5 documents (``analyses.sae.corpus``'s
  ``corpus_stats``): encode each batch [b, s, d_sae], then reduce, never holding more;
- sae-max-acts: one feature's activation per token (one column of W_enc), what the top-texts
  search streams.

    .venv/bin/python -m bench.sae [--docs 64] [--batch 16] [--max-len 64] [--d-sae 24576] [--layer 6]
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from analyses.corpus import CorpusBatch, CorpusLoop
from analyses.models import hooked
from analyses.sae.corpus import corpus_stats, feature_reader
from analyses.sae.model import SAE
from bench.common import peak_rss_mb, reset_peak
from bench.neuron_capture import batches, best_of


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--docs", type=int, default=64)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=64)
    ap.add_argument("--d-sae", type=int, default=24576)
    ap.add_argument("--layer", type=int, default=6)
    ap.add_argument("--repeats", type=int, default=2)
    ap.add_argument("--threads", type=int, default=1)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    torch.manual_seed(0)
    cfg = GPT2Config(n_layer=12, n_embd=768, n_head=12, n_positions=1024, vocab_size=50257)
    model = hooked(GPT2LMHeadModel(cfg).eval())
    d = cfg.n_embd
    sae = SAE(torch.randn(d, args.d_sae) / d ** 0.5, torch.zeros(args.d_sae) - 0.5,
              torch.randn(args.d_sae, d) / d ** 0.5, torch.zeros(d), f"blocks.{args.layer}.hook_resid_pre")
    data = batches(args.docs, args.batch, args.max_len, cfg.vocab_size)
    hook = sae.hook_name

    def forward(ids):
        return model.run(ids, capture=[hook], stop_at_layer=args.layer + 1)

    def stats(ids):
        rows = ids.shape[0]
        one = CorpusBatch(ids, [ids.shape[1]] * rows, [""] * rows, 0)
        return corpus_stats(model, sae, CorpusLoop([one], rows))

    one_feature = feature_reader(model, sae, 0)
    reset_peak()
    best = best_of({"forward": forward, "sae-corpus": stats, "sae-max-acts": one_feature}, data, "cpu", args.repeats)
    tokens = sum(int(ids.numel()) for ids in data)
    print(f"GPT-2-small shape, SAE {d} -> {args.d_sae} on {hook}, {args.docs} texts ({tokens} tokens incl. padding), "
          f"batch {args.batch}, {args.threads} thread(s), CPU")
    for name, sec in best.items():
        print(f"  {name:13s} {args.docs / sec:7.1f} texts/s   {tokens / sec:8.0f} tokens/s   "
              f"{sec / best['forward']:.2f}x the forward")
    largest = args.batch * args.max_len * args.d_sae * 4 / 2**20
    print(f"  peak RSS {peak_rss_mb():.0f} MB; the largest tensor held is one batch's features, "
          f"at most {largest:.0f} MB (a [texts x positions x features] tensor would be "
          f"{args.docs * args.max_len * args.d_sae * 4 / 2**20:.0f} MB)")


if __name__ == "__main__":
    main()
