"""Issue 24, paper 1: can a trained attention-only toy learn erasure (a writer head whose output
later heads remove, judged as a set)? A time-boxed study around recipe ``erasure-repeat``.

Each run trains through the recipe machinery (``analyses.toys.train.train_with_curve``, the same
data stream, init and optimiser as ``workbench train``), with the recipe's fields overridden from
the command line; then it measures on the held-out ``repeat`` texts: second-copy accuracy (argmax
at the predictable positions), each layer-0 head's previous-token attention, and
``erasure-verdict`` (the workbench's own analysis, default settings) with every layer-0 head as
the writer, and the scatter of two other sets: every head after the writer (issue 24 judged the
four layer-1 heads together) and the heads below the paper's -0.05. One JSON line per run goes to
stdout. The seed sweep behind toy:erasure-repeat (seed 5) ran ``--seed 0`` .. ``--seed 9``
(docs/erasure-toy.md).

    PYTHONPATH=. .venv/bin/python -m bench.erasure_toy_attempt --out /tmp/te/a --steps 6000 --embed-std 0.1
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import time

import torch


def copy_accuracy_and_prev_token(out: str, n: int = 128) -> tuple[float, list[float]]:
    """Second-copy accuracy (argmax == next token where it is predictable) and each layer-0
    head's mean attention to the previous position."""
    from transformers import AutoModelForCausalLM, AutoTokenizer

    from analyses.tasks import task_examples
    from analyses.tasks.repeat import second_copy

    tok = AutoTokenizer.from_pretrained(out)
    model = AutoModelForCausalLM.from_pretrained(out, attn_implementation="eager").eval()
    examples = task_examples("repeat", n, seed=0, split="test")
    ids = torch.tensor([tok(e.prompt + e.answer)["input_ids"] for e in examples])
    with torch.no_grad():
        res = model(input_ids=ids, output_attentions=True)
    pred = res.logits.argmax(-1)
    hits = [bool(pred[i, p] == ids[i, p + 1]) for i, e in enumerate(examples) for p in second_copy(e)]
    att = res.attentions[0]  # [batch, head, q, k]
    prev = att.diagonal(offset=-1, dim1=2, dim2=3).mean(dim=(0, 2))
    return sum(hits) / len(hits), [round(float(x), 3) for x in prev]


def verdicts(out: str, writers: list[str], n: int = 128) -> dict:
    from analyses.corpus import PromptSet
    from analyses.erasure.verdict import eraser_verdict
    from sessions.loading import load

    lm = load(out, device="cpu")
    found = {}
    for w in writers:
        table = eraser_verdict(lm.hooked, lm.tokenizer, PromptSet(task="repeat", n=n), w)
        m = table.meta
        found[w] = {"verdict": m["set_verdict"], "set": m["set"], "set_pr": round(m["set_pr"], 3),
                    "r": round(m["set_r"], 3), "slope": round(m["set_slope"], 3),
                    "stream": [round(m["stream_before"], 3), round(m["stream_after"], 3)],
                    "restored": round(m["restored"], 3),
                    "heads": {lab: [round(p, 3), round(r, 3)] for lab, p, r in
                              zip(table.labels[:-1], table.columns["pr"], table.columns["r"])}}
        found[w].update(other_sets(lm, table, w, n))
    return found


def other_sets(lm, table, writer: str, n: int) -> dict:
    """The set r of every head after the writer (issue 24 judged the four layer-1 heads together)
    and of the heads below the paper's own threshold (median PR < -0.05, wave2-specs E1.1)."""
    from analyses.corpus import PromptSet
    from analyses.erasure.ratios import writer_eraser_scatter

    heads = table.labels[:-1]
    pr = dict(zip(heads, table.columns["pr"]))
    sets = {"all": heads, "p05": [h for h in heads if pr[h] < -0.05]}
    out = {}
    for name, members in sets.items():
        if not members:
            out[name] = None
            continue
        fit = writer_eraser_scatter(lm.hooked, lm.tokenizer, PromptSet(task="repeat", n=n), writer,
                                    erasers=members, points=100000).fit()
        out[name] = {"set": members, "pr": round(sum(pr[h] for h in members), 3), "r": round(fit["r"], 3),
                     "slope": round(fit["slope"], 3)}
    return out


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--out", required=True)
    ap.add_argument("--steps", type=int, default=6000)
    ap.add_argument("--seed", type=int, default=0)
    ap.add_argument("--lr", type=float, default=3e-3)
    ap.add_argument("--warmup", type=int, default=50)
    ap.add_argument("--batch", type=int, default=64)
    ap.add_argument("--embed-std", type=float, default=0.0)
    ap.add_argument("--layers", type=int, default=2)
    ap.add_argument("--d", type=int, default=32)
    ap.add_argument("--dropout", type=float, default=0.0)
    ap.add_argument("--untied", action="store_true")
    ap.add_argument("--measure-only", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(1)
    from analyses.toys import recipes
    from analyses.toys.train import train_with_curve

    base = recipes.TRAIN_RECIPES["erasure-repeat"]
    shape = {**base.shape, "n_layers": args.layers, "d_model": args.d, "resid_pdrop": args.dropout,
             "attn_pdrop": args.dropout, "embd_pdrop": args.dropout}
    if args.untied:
        shape["tie_word_embeddings"] = False
    recipe = dataclasses.replace(base, shape=shape, steps=args.steps, seed=args.seed, lr=args.lr, warmup=args.warmup,
                                 batch=args.batch, embed_std=args.embed_std)
    recipes.TRAIN_RECIPES["erasure-attempt"] = recipe
    start = time.monotonic()
    if not args.measure_only:
        def progress(step: int, total: int, loss: float) -> None:
            if step % 500 == 1:
                print(f"# step {step}/{total} loss {loss:.3f} {time.monotonic() - start:.0f}s", flush=True)

        train_with_curve("erasure-attempt", args.out, progress=progress, force=True)
    seconds = time.monotonic() - start
    acc, prev = copy_accuracy_and_prev_token(args.out)
    print(f"# copy accuracy {acc:.3f}, layer-0 previous-token attention {prev}", flush=True)
    writers = [f"L{layer}H{h}" for layer in range(args.layers - 1) for h in range(4)]
    row = {"args": vars(args), "seconds": round(seconds), "copy_acc": round(acc, 3), "prev_token": prev,
           "verdicts": verdicts(args.out, writers)}
    print(json.dumps(row), flush=True)


if __name__ == "__main__":
    main()
