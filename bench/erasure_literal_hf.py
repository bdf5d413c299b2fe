"""Issue 24's paper-1 recipe written directly with HF's GPT-2 classes (not the recipe machinery):
random repeated-segment texts as ids, ``labels=ids``, HF's cosine schedule. It found why
``erasure-repeat`` first stayed on its plateau: ids of the vocabulary that never occur in the data
(docs/erasure-toy.md). Prints held-out second-copy accuracy every 500 steps.

    python -m bench.erasure_literal_hf --symbols 32 --vocab 32 [--first 0] [--dropout 0.1] --out DIR
"""

from __future__ import annotations

import argparse
import random
import time

import torch


def texts(rng: random.Random, n: int, lo: int, hi: int) -> list[tuple[list[int], int]]:
    """(ids, segment length): a segment of 4-10 distinct ids in lo..hi-1, again, then random ids to 22."""
    out = []
    for _ in range(n):
        k = rng.randint(4, 10)
        seg = rng.sample(range(lo, hi), k)
        out.append((seg + seg + [rng.randrange(lo, hi) for _ in range(22 - 2 * k)], k))
    return out


def main() -> None:
    from transformers import GPT2Config, GPT2LMHeadModel, get_cosine_schedule_with_warmup

    ap = argparse.ArgumentParser()
    ap.add_argument("--symbols", type=int, default=32)
    ap.add_argument("--first", type=int, default=0, help="the first symbol's id (ids below it never occur)")
    ap.add_argument("--vocab", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--out", default="")
    a = ap.parse_args()
    torch.set_num_threads(1)
    torch.manual_seed(a.seed)
    cfg = GPT2Config(vocab_size=a.vocab, n_positions=24, n_embd=32, n_layer=2, n_head=4, resid_pdrop=a.dropout,
                     attn_pdrop=a.dropout, embd_pdrop=a.dropout)
    model = GPT2LMHeadModel(cfg)
    for block in model.transformer.h:  # attention-only: MLPs zeroed and frozen
        for p in block.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=3e-3, weight_decay=0.01)
    sched = get_cosine_schedule_with_warmup(opt, 50, a.steps)
    rng, lo, hi = random.Random(a.seed), a.first, a.first + a.symbols
    held = texts(random.Random(12345), 128, lo, hi)
    held_ids = torch.tensor([t for t, _ in held])
    start = time.monotonic()
    for step in range(a.steps):
        ids = torch.tensor([t for t, _ in texts(rng, 64, lo, hi)])
        loss = model(input_ids=ids, labels=ids).loss
        opt.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if step % 500 == 0 or step == a.steps - 1:
            model.eval()
            with torch.no_grad():
                pred = model(input_ids=held_ids).logits.argmax(-1)
            model.train()
            hits = [bool(pred[i, p] == held_ids[i, p + 1]) for i, (_, k) in enumerate(held) for p in range(k, 2 * k - 1)]
            print(f"step {step} loss {loss.item():.3f} copy accuracy {sum(hits) / len(hits):.3f} "
                  f"{time.monotonic() - start:.0f}s", flush=True)
    if a.out:
        model.save_pretrained(a.out)


if __name__ == "__main__":
    main()
