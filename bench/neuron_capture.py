"""Streaming a corpus through the neuron capture vs plain forwards of the same batches.

GPT-2-small shape (12 layers, d_model 768, d_mlp 3072, vocab 50257), random weights, a synthetic
corpus of random-length documents (right-padded batches, as ``analyses.corpus`` makes them).
Three passes over the same batches, each timed in this one run:

- plain: the hooked model's forward to the logits with nothing captured (what any streaming
  analysis costs at least), and the plain HF forward for reference;
- capture, full: the same forward with one neuron's column kept by a hook (``full=True``);
- capture: what ``neuron-max-acts`` runs: the column kept and the run stopped after the neuron's
  layer (``analyses.neurons.neuron_activations``).

Printed as throughput (documents/s, best of ``--repeats`` passes, the methods taking turns) and
as a ratio to the plain hooked forward's throughput (target >= 0.8x).

    .venv/bin/python -m bench.neuron_capture [--device cpu|cuda] [--docs 256] [--batch 16] [--layer 9]
"""

from __future__ import annotations

import argparse

import torch
from transformers import GPT2Config, GPT2LMHeadModel

from analyses.models import hooked
from analyses.neurons import neuron_activations
from bench.common import timed


def batches(n_docs: int, batch: int, max_len: int, vocab: int, seed: int = 0) -> list[torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    out = []
    for start in range(0, n_docs, batch):
        k = min(batch, n_docs - start)
        lengths = torch.randint(max_len // 4, max_len + 1, (k,), generator=g)
        ids = torch.zeros(k, int(lengths.max()), dtype=torch.long)
        for i, n in enumerate(lengths.tolist()):
            ids[i, :n] = torch.randint(0, vocab, (n,), generator=g)
        out.append(ids)
    return out


def one_pass(fn, data: list[torch.Tensor], device: str) -> float:
    """Seconds for one pass of ``fn`` over every batch."""
    return timed(lambda: [fn(ids.to(device)) for ids in data], device=device).wall


def best_of(fns: dict, data: list[torch.Tensor], device: str, repeats: int) -> dict[str, float]:
    """Best-of-``repeats`` pass time of each ``fn``, the methods taking turns within each repeat so
    that load from other processes falls on all of them alike (after one warm-up batch each)."""
    for fn in fns.values():
        fn(data[0].to(device))
    best = dict.fromkeys(fns, float("inf"))
    for _ in range(repeats):
        for name, fn in fns.items():
            best[name] = min(best[name], one_pass(fn, data, device))
    return best


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--device", default="cuda" if torch.cuda.is_available() else "cpu")
    ap.add_argument("--docs", type=int, default=128)
    ap.add_argument("--batch", type=int, default=16)
    ap.add_argument("--max-len", type=int, default=128)
    ap.add_argument("--layer", type=int, default=9, help="the neuron's layer (the paper's GPT-2 small: 9-11)")
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.manual_seed(0)
    config = GPT2Config()
    model = GPT2LMHeadModel(config).eval().to(args.device)
    hm = hooked(model)
    data = batches(args.docs, args.batch, args.max_len, config.vocab_size)
    print(f"GPT-2-small shape, random weights, {args.docs} docs of {args.max_len // 4}-{args.max_len} tokens, "
          f"batch {args.batch}, neuron layer {args.layer}, device {args.device}, torch {torch.__version__}, "
          f"{torch.get_num_threads()} threads")
    def hf(ids):
        with torch.no_grad():
            return model(ids)

    fns = {"plain HF forward": hf, "plain hooked forward": lambda ids: hm.run(ids),
           "capture, full forward": lambda ids: neuron_activations(hm, ids, args.layer, [7], full=True),
           "capture, stop after layer": lambda ids: neuron_activations(hm, ids, args.layer, [7])}
    best = best_of(fns, data, args.device, args.repeats)
    plain = best["plain hooked forward"]
    for name, t in best.items():
        print(f"{name:>26}: {args.docs / t:8.1f} docs/s  ratio to plain hooked {plain / t:5.2f}x")

if __name__ == "__main__":
    main()
