"""Issue 24, paper 3, second round: train on SHORT lists only and test on long ones (the paper's
crowding lives in length), with the positions of long prompts still trained (a random run of filler
tokens before the prompt), so that a long list fails for the number of its items, not for untrained
position embeddings. Optionally the answer is a per-prompt *code* written before each list item
(``need k3 A k7 B k1 C . got B A . still`` -> ``k1``), so only a head that attends to the missing
item's list position can answer: a mover, which the got items must steer away from the others.

Before any edit search: per-N accuracy (answer vs a got item's answer, as ``eval``; and the argmax
over the N candidates) and the last layer's attention from the query to the list items (missing
vs got). Then every ``LxHy:ov:i=a`` (a in --scales) is scored on a search sample over all N and
the best measured per N on a held-out sample, as ``recall-edit`` does.

    PYTHONPATH=. .venv/bin/python -m bench.laundry_short_attempt --codes --train-max 4 --steps 3000
"""

from __future__ import annotations

import argparse
import json
import random
import time

import torch
import torch.nn.functional as F

from bench.laundry_toy_attempt import edit

ITEMS = 20  # --items changes it
PAD, NEED, GOT, DOT, STILL, FILL = 0, 1, 2, 3, 4, 5
FIRST_ITEM = 6
CODES = 20


def first_code() -> int:
    return FIRST_ITEM + ITEMS


def text(rng: random.Random, n: int, m: int, codes: bool, fill: int):
    """(token ids, answer ids of the items not got, list positions of those, the got items' answers,
    list positions of all items)."""
    items = rng.sample(range(FIRST_ITEM, FIRST_ITEM + ITEMS), n)
    code = rng.sample(range(first_code(), first_code() + CODES), n) if codes else items
    got = rng.sample(range(n), m)
    got_part = [GOT, *[(first_code() + CODES + j) if ORDINALS else items[j] for j in got], DOT]
    ids = [FILL] * fill + (got_part if GOT_FIRST else []) + [NEED]
    pos = []
    for c, x in zip(code, items):
        if codes:
            ids.append(c)
        pos.append(len(ids))
        ids.append(x)
    ids += [DOT, STILL] if GOT_FIRST else [DOT, *got_part, STILL]
    left = [j for j in range(n) if j not in got]
    return ids, [code[j] for j in left], [pos[j] for j in left], [code[j] for j in got], pos


GOT_FIRST = False  # --got-first: ``got B D A . need A B C D . still`` (a list item can see it was got)
ORDINALS = False  # --ordinals: got items named by their list index (1-based), not by the item


def vocab(codes: bool) -> int:
    return first_code() + CODES + 10


SAMPLED = False  # --sampled: a sampled answer instead of the soft target
MAX_GOT = None  # --max-got: training texts name at most this many got items


def batch(rng, size, lengths, codes, graded, max_fill):
    seqs, targets = [], torch.zeros(size, vocab(codes))
    info = []
    for b in range(size):
        n = rng.choice(lengths)
        top = n - 1 if MAX_GOT is None else min(n - 1, MAX_GOT)
        m = rng.randint(0, top) if graded and rng.random() < 0.5 else top
        ids, ans, ans_pos, got_ans, pos = text(rng, n, m, codes, rng.randint(0, max_fill) if max_fill else 0)
        seqs.append(ids)
        if SAMPLED:  # one not-got item as the answer, as a task's Example has (workbench train)
            targets[b, rng.choice(ans)] = 1.0
        else:
            targets[b, ans] = 1.0 / len(ans)
        info.append((ans, ans_pos, got_ans, pos))
    width = max(len(s) for s in seqs)
    ids = torch.full((size, width), PAD)
    mask = torch.zeros(size, width, dtype=torch.long)
    last = torch.tensor([len(s) - 1 for s in seqs])
    for b, s in enumerate(seqs):
        ids[b, : len(s)] = torch.tensor(s)
        mask[b, : len(s)] = 1
    return ids, mask, last, targets, info


def model_of(layers, heads, d, seed, codes, n_ctx):
    from transformers import GPT2Config, GPT2LMHeadModel

    torch.manual_seed(seed)
    cfg = GPT2Config(vocab_size=vocab(codes), n_positions=n_ctx, n_embd=d, n_layer=layers, n_head=heads,
                     resid_pdrop=0.0, attn_pdrop=0.0, embd_pdrop=0.0, bos_token_id=PAD, eos_token_id=PAD)
    cfg._attn_implementation = "eager"
    model = GPT2LMHeadModel(cfg)
    for block in model.transformer.h:
        for p in block.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)
    return model


class Sample:
    """A fixed test sample, one missing item, N in ``lengths`` (``per`` each), no filler."""

    def __init__(self, seed, per, lengths, codes):
        rng = random.Random(seed)
        self.parts = []
        for n in lengths:
            ids, mask, last, targets, info = batch(rng, per, [n], codes, False, 0)
            distractor = torch.tensor([rng.choice(got) for _, _, got, _ in info])
            cands = torch.tensor([[a[0]] + g for a, _, g, _ in info])
            self.parts.append((n, ids, mask, last, targets.argmax(-1), distractor, cands, info))

    @torch.no_grad()
    def score(self, model):
        """{N: (binary accuracy, argmax accuracy)}."""
        out = {}
        for n, ids, mask, last, answer, distractor, cands, _ in self.parts:
            logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(len(ids)), last]
            binary = float((logits.gather(1, answer[:, None]) > logits.gather(1, distractor[:, None])).float().mean())
            arg = float((logits.gather(1, cands).argmax(-1) == 0).float().mean())
            out[n] = (binary, arg)
        return out

    @torch.no_grad()
    def attention(self, model):
        """Per N, per layer, per head: mean attention from the query to the missing item's list
        position, and mean per got item's list position."""
        out = {}
        for n, ids, mask, last, _, _, _, info in self.parts:
            atts = model(input_ids=ids, attention_mask=mask, output_attentions=True).attentions
            per_layer = []
            for att in atts:
                rows = att[torch.arange(len(ids)), :, last]  # [B, H, P]
                miss = torch.stack([rows[b, :, info[b][1][0]] for b in range(len(ids))])
                others = torch.stack([rows[b][:, [p for p in info[b][3] if p != info[b][1][0]]].mean(-1)
                                      for b in range(len(ids))])
                per_layer.append([(round(float(a), 3), round(float(o), 3))
                                  for a, o in zip(miss.mean(0), others.mean(0))])
            out[n] = per_layer
        return out


def overall(scores, lo=2):
    xs = [s[0] for n, s in scores.items() if n >= lo]
    return sum(xs) / len(xs)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--heads", type=int, default=8)
    ap.add_argument("--d", type=int, default=64)
    ap.add_argument("--steps", type=int, default=3000)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--codes", action="store_true")
    ap.add_argument("--ordinals", action="store_true", help="got items named by list index: got 2 4 1")
    ap.add_argument("--max-got", type=int, default=-1, help="train with at most this many got items (-1: N-1)")
    ap.add_argument("--sampled", action="store_true", help="train on one sampled not-got item, not the soft target")
    ap.add_argument("--got-first", action="store_true", help="the got items before the list")
    ap.add_argument("--items", type=int, default=20, help="item vocabulary")
    ap.add_argument("--plain", action="store_true", help="no graded curriculum")
    ap.add_argument("--train-min", type=int, default=2)
    ap.add_argument("--train-max", type=int, default=4)
    ap.add_argument("--max-fill", type=int, default=-1, help="filler tokens before training prompts (-1: enough)")
    ap.add_argument("--scales", default="0,2")
    ap.add_argument("--search-per", type=int, default=34, help="search prompts per N (N 2-10)")
    ap.add_argument("--no-search", action="store_true")
    ap.add_argument("--out", default="")
    args = ap.parse_args()
    torch.set_num_threads(1)
    global ITEMS, ORDINALS, GOT_FIRST, SAMPLED
    ITEMS, ORDINALS, GOT_FIRST, SAMPLED = args.items, args.ordinals, args.got_first, args.sampled
    per_item = 2 if args.codes else 1
    longest = 2 + 10 * per_item + 2 + 9 + 2
    short = 2 + args.train_max * per_item + 2 + args.train_max - 1 + 2
    max_fill = longest - short if args.max_fill < 0 else args.max_fill
    model = model_of(args.layers, args.heads, args.d, args.seed, args.codes, max(longest, short + max_fill) + 1).train()
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=args.lr, weight_decay=0.01)
    rng = random.Random(args.seed)
    global MAX_GOT
    monitor = Sample(99, 100, range(2, 11), args.codes)  # one item missing
    MAX_GOT = None if args.max_got < 0 else args.max_got
    start = time.monotonic()
    lengths = list(range(args.train_min, args.train_max + 1))
    for step in range(args.steps):
        lr = args.lr * min(1.0, (step + 1) / 200) * 0.5 * (1 + torch.cos(torch.tensor(torch.pi * step / args.steps)))
        for g in opt.param_groups:
            g["lr"] = float(lr)
        ids, mask, last, targets, _ = batch(rng, args.batch, lengths, args.codes, not args.plain, max_fill)
        logits = model(input_ids=ids, attention_mask=mask).logits[torch.arange(len(ids)), last]
        loss = -(targets * F.log_softmax(logits, -1)).sum(-1).mean()
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        if step % 250 == 0 or step == args.steps - 1:
            model.eval()
            acc = monitor.score(model)
            model.train()
            print(f"step {step} loss {loss.item():.3f} t {time.monotonic() - start:.0f}s bin/arg "
                  + " ".join(f"{n}:{a:.2f}/{b:.2f}" for n, (a, b) in acc.items()), flush=True)
    model.eval()
    MAX_GOT = None  # test texts: one item missing
    if args.out:
        model.save_pretrained(args.out)
    held = Sample(12345, 200, range(2, 11), args.codes)
    h0 = held.score(model)
    print("held-out bin/arg by N:", json.dumps({n: [round(a, 3), round(b, 3)] for n, (a, b) in h0.items()}), flush=True)
    att = Sample(7, 100, (3, 6, 9), args.codes).attention(model)
    for n, layers in att.items():
        for layer, heads in enumerate(layers):
            print(f"attention N={n} L{layer} (missing, per got item):", heads, flush=True)
    if args.no_search:
        return
    search = Sample(555, args.search_per, range(2, 11), args.codes)
    base = overall(search.score(model))
    scales = [float(s) for s in args.scales.split(",")]
    scored = []
    dh = args.d // args.heads
    for layer in range(args.layers):
        for head in range(args.heads):
            for comp in range(dh):
                for alpha in scales:
                    undo = edit(model, layer, head, comp, alpha)
                    scored.append((overall(search.score(model)), layer, head, comp, alpha))
                    undo()
    scored.sort(reverse=True)
    print(f"search base {base:.3f}; best five: {scored[:5]}", flush=True)
    for _, layer, head, comp, alpha in scored[:3]:
        undo = edit(model, layer, head, comp, alpha)
        after = held.score(model)
        undo()
        gains = {n: round(after[n][0] - h0[n][0], 3) for n in h0}
        print(f"edit L{layer}H{head}:ov:{comp}={alpha:g}: held-out binary gain by N {json.dumps(gains)}; "
              f"N 7-10 {overall(after, 7) - overall(h0, 7):+.3f}; all {overall(after) - overall(h0):+.3f}", flush=True)


if __name__ == "__main__":
    main()
