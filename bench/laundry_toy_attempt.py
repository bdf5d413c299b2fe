"""Issue 24, paper 3: can a small attention-only model learn the missing-item list task with an
inhibition channel an edit can amplify? A time-boxed study, run outside the shipped toys.

Format (the paper's "missing item" task in a compact word form): ``need A B C D . got B D A . still``
-> ``C``; N items from 20, the N-1 "got" items in random order. Idea tried here (untried before):
a *graded* curriculum that first builds a positive mover head. Each training text names m of
the N items after "got", m uniform in 0..N-1, and the loss is the cross-entropy against the
uniform distribution over the items not yet got (m = 0: copy any list item, which a plain mover
head solves; every further m asks the mover to look away from one more item). Test texts always
have m = N-1 (one item missing).

Then every weight edit of one OV component (scale 0, 2 or 3) of every layer-0 head, and of every
layer-1 head, is scored on a search sample of long lists (N 7..10) and the best is measured on a
held-out sample, per N.

    PYTHONPATH=. .venv/bin/python bench/laundry_toy_attempt.py --layers 2 --heads 4 --steps 6000
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F

ITEMS = 20
PAD, NEED, GOT, DOT, STILL = 0, 1, 2, 3, 4
FIRST_ITEM = 5
VOCAB = FIRST_ITEM + ITEMS


def text(rng: random.Random, n: int, m: int) -> tuple[list[int], list[int]]:
    """(token ids, the items not yet got)."""
    items = rng.sample(range(FIRST_ITEM, VOCAB), n)
    got = rng.sample(items, m)
    return [NEED, *items, DOT, GOT, *got, DOT, STILL], [x for x in items if x not in got]


def batch(rng: random.Random, size: int, lengths: range, graded: bool):
    seqs, targets = [], torch.zeros(size, VOCAB)
    for b in range(size):
        n = rng.choice(lengths)
        m = rng.randrange(n) if graded and rng.random() < 0.5 else n - 1
        ids, missing = text(rng, n, m)
        seqs.append(ids)
        targets[b, missing] = 1.0 / len(missing)
    width = max(len(s) for s in seqs)
    ids = torch.full((size, width), PAD)
    mask = torch.zeros(size, width, dtype=torch.long)
    last = torch.tensor([len(s) - 1 for s in seqs])
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s)
        mask[b, : len(s)] = 1
    return ids, mask, last, targets


def model_of(layers: int, heads: int, d: int, seed: int):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=VOCAB, n_positions=32, n_embd=d, n_layer=layers, n_head=heads,
                     resid_pdrop=0.0, attn_pdrop=0.0, embd_pdrop=0.0, bos_token_id=PAD, eos_token_id=PAD)
    cfg._attn_implementation = "eager"  # attention weights are returned
    model = GPT2LMHeadModel(cfg)
    for block in model.transformer.h:  # attention-only
        for p in block.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)
    return model


@torch.no_grad()
def accuracy_by_length(model, seed: int, per: int = 200, lengths=range(2, 11)) -> dict[int, float]:
    """Argmax over the list's items at the last position, one missing item."""
    rng = random.Random(seed)
    out = {}
    for n in lengths:
        ids, mask, last, targets = batch(rng, per, range(n, n + 1), graded=False)
        logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(per), last]
        allowed = torch.full_like(logits, -1e9)
        for b in range(per):
            allowed[b, ids[b, 1 : n + 1]] = 0
        out[n] = float(((logits + allowed).argmax(-1) == targets.argmax(-1)).float().mean())
    return out


@torch.no_grad()
def mover_attention(model, seed: int, n: int = 8, per: int = 200) -> dict[str, list[float]]:
    """Per last-layer head: mean attention from the last position to the missing item's list
    position, and to the mentioned items' list positions (averaged per item)."""
    rng = random.Random(seed)
    ids, mask, last, targets = batch(rng, per, range(n, n + 1), graded=False)
    att = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions[-1]  # [B, H, P, P]
    missing = targets.argmax(-1)
    res = {"missing": [], "mentioned": []}
    for h in range(att.shape[1]):
        a_m, a_o = 0.0, 0.0
        for b in range(per):
            row = att[b, h, last[b], 1 : n + 1]
            k = int((ids[b, 1 : n + 1] == missing[b]).nonzero()[0])
            a_m += float(row[k])
            a_o += float(row.sum() - row[k]) / (n - 1)
        res["missing"].append(a_m / per)
        res["mentioned"].append(a_o / per)
    return res


def write_directions(model, layer: int, head: int):
    """Unit write directions of the head's OV (norm weight folded in, W_O centred), by decreasing s."""
    block = model.transformer.h[layer]
    d = model.config.n_embd
    dh = d // model.config.n_head
    w_v = block.attn.c_attn.weight[:, 2 * d + head * dh : 2 * d + (head + 1) * dh] * block.ln_1.weight[:, None]
    w_o = block.attn.c_proj.weight[head * dh : (head + 1) * dh]
    w_o = w_o - w_o.mean(-1, keepdim=True)
    _, _, vh = torch.linalg.svd(w_v @ w_o, full_matrices=False)
    return vh[:dh]


def edit(model, layer: int, head: int, comp: int, alpha: float):
    """Scale one OV component (the workbench's LxHy:ov:i=alpha); returns an undo function."""
    v = write_directions(model, layer, head)[comp]
    dh = model.config.n_embd // model.config.n_head
    w = model.transformer.h[layer].attn.c_proj.weight
    saved = w.data.clone()
    block = w.data[head * dh : (head + 1) * dh]
    block += (alpha - 1.0) * (block @ v)[:, None] * v[None, :]

    def undo():
        w.data.copy_(saved)
    return undo


def long_accuracy(acc: dict[int, float], lo: int = 7) -> float:
    xs = [a for n, a in acc.items() if n >= lo]
    return sum(xs) / len(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=4)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--plain", action="store_true", help="no graded curriculum (always one item missing)")
    ap.add_argument("--train-max", type=int, default=10, help="longest list trained on")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    model = model_of(args.layers, args.heads, args.d, args.seed).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    start = time.monotonic()
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = float(lr)
        ids, mask, last, targets = batch(rng, 128, range(2, args.train_max + 1), graded=not args.plain)
        logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(len(ids)), last]
        loss = -(targets * F.log_softmax(logits, -1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 500 == 0 or step == args.steps - 1:
            model.eval()
            acc = accuracy_by_length(model, 99, per=100)
            model.train()
            print(f"step {step} loss {loss.item():.3f} t {time.monotonic() - start:.0f}s acc "
                  + " ".join(f"{n}:{a:.2f}" for n, a in acc.items()), flush=True)
    model.eval()
    held = accuracy_by_length(model, 12345, per=300)
    print("held-out accuracy by N:", json.dumps({n: round(a, 3) for n, a in held.items()}), flush=True)
    print("last-layer attention (missing vs mentioned, N=8):", json.dumps(mover_attention(model, 7)), flush=True)
    scored = []
    for layer in range(args.layers):
        for head in range(args.heads):
            for comp in range(args.d // args.heads):
                for alpha in (0.0, 2.0, 3.0):
                    undo = edit(model, layer, head, comp, alpha)
                    scored.append((long_accuracy(accuracy_by_length(model, 555, per=60, lengths=range(7, 11))),
                                   layer, head, comp, alpha))
                    undo()
    base = long_accuracy(accuracy_by_length(model, 555, per=60, lengths=range(7, 11)))
    scored.sort(reverse=True)
    print(f"search (N 7-10) base {base:.3f}; best five: {scored[:5]}", flush=True)
    _, layer, head, comp, alpha = scored[0]
    undo = edit(model, layer, head, comp, alpha)
    after = accuracy_by_length(model, 12345, per=300)
    undo()
    print(f"best edit L{layer}H{head}:ov:{comp}={alpha:g}; held-out after:",
          json.dumps({n: round(a, 3) for n, a in after.items()}),
          f"long-list gain {long_accuracy(after) - long_accuracy(held):+.3f}", flush=True)
    if args.out:
        model.save_pretrained(args.out)


if __name__ == "__main__":
    main()
