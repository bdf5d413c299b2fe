"""Count01 study (Zsámboki et al. 2025): train one-layer attention-only models over head counts and
seeds, then test two of the paper's claims on each:

1. *pseudo-ensemble*: every head alone separates the classes (per-head ROC AUC and separation
   accuracy of its direct contribution to the yes-no logit, ``analyses.counting.head_metrics``);
2. *uniform weighting breaks EOS*: rescaling the heads' outputs to the same spread
   (``head_combination``'s ``uniform`` row) keeps the yes/no decision but loses the end-of-sequence
   prediction.

    .venv/bin/python scripts/count01_study.py --heads 1,2,4 --seeds 0,1,2 --out count01_study.md

Trained models are cached under ``--cache`` (one folder per recipe, heads, seed and steps, with a
``study.json`` holding the settings and the training report); a model already trained with the same
settings is reused. ``--train-only`` stops after training. The table is printed and, with
``--out``, written as markdown.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import math
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

AUC_BAR = 0.9  # a head "separates the classes alone" when its AUC and s-acc both reach this
EOS_DROP = 0.05  # "uniform weighting breaks EOS" when its EOS accuracy is this much below the model's


def _ints(text: str, what: str) -> list[int]:
    try:
        values = [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise SystemExit(f"{what}: a comma-separated list of whole numbers, not {text!r}") from None
    if not values:
        raise SystemExit(f"{what}: empty")
    return values


def _settings(recipe_name: str, heads: int, seed: int, steps: int | None) -> dict:
    from analyses.toys.train import resolve_recipe

    recipe = resolve_recipe(recipe_name, heads, seed)
    return {"recipe": recipe_name, "fields": dataclasses.asdict(recipe),
            "steps": steps if steps is not None else recipe.steps}


def train_one(cache: Path, recipe: str, heads: int, seed: int, steps: int | None, eval_every: int) -> dict:
    """The training report of (recipe, heads, seed, steps), training it unless the cache has it."""
    from analyses.toys.train import train_with_curve

    settings = _settings(recipe, heads, seed, steps)
    folder = cache / f"{recipe}-h{heads}-s{seed}-n{settings['steps']}"
    record = folder / "study.json"
    if record.is_file() and (folder / "model.safetensors").is_file():
        saved = json.loads(record.read_text())
        if saved.get("settings") == settings and not saved["report"]["cancelled"]:
            print(f"cached: {folder}", file=sys.stderr)
            return {**saved["report"], "path": str(folder)}
    start = time.monotonic()

    def progress(step: int, total: int, loss: float) -> None:
        if step % 1000 == 1 or step == total:
            print(f"  {folder.name}: step {step}/{total} loss {loss:.4f} {time.monotonic() - start:.0f}s",
                  file=sys.stderr, flush=True)

    report = train_with_curve(recipe, folder, steps=steps, progress=progress, heads=heads, seed=seed,
                              eval_every=eval_every, force=True)  # the study's own cache: a stale run is redone
    record.write_text(json.dumps({"settings": settings, "report": report}))
    return report


def analyse_one(path: str, n: int) -> dict:
    """Model accuracy, per-head metrics and the uniform-weighting run of one checkpoint."""
    from analyses.counting import head_combination, head_metrics  # lazily: the training half works without it
    from analyses.evaluate import evaluate
    from analyses.tasks import task_examples
    from sessions.loading import load

    lm = load(str(path), device="cpu")
    examples = task_examples("count01", n, seed=7, split="test")
    ev = evaluate(lm.hooked, lm.tokenizer, "count01", examples).meta
    metrics = head_metrics(lm.hooked, lm.tokenizer, examples, layer=0, seed=0)
    combo = head_combination(lm.hooked, lm.tokenizer, examples, layer=0)
    heads = [r for r in metrics.rows() if r["label"] != "model"]
    by_row = {r["label"]: r for r in combo.rows()}
    return {
        "acc": ev["accuracy"], "eos_acc": ev["target_accuracy"],
        "auc": [r["auc"] for r in heads], "s_acc": [r["s_acc"] for r in heads], "l_acc": [r["l_acc"] for r in heads],
        "own_acc": [r["own_acc"] for r in heads], "scale": [r["scale"] for r in heads],
        "uniform_acc": by_row["uniform"]["acc"], "uniform_eos_acc": by_row["uniform"]["eos_acc"],
        "uniform_weights": [v for k, v in by_row["uniform"].items() if k.startswith("w_")],
        "heads_only_r2": combo.meta.get("heads_only_r2"),
    }


def _f(x: float | None, digits: int = 3) -> str:
    return "n/a" if x is None or (isinstance(x, float) and math.isnan(x)) else f"{x:.{digits}f}"


def _spread(values: list[float] | None) -> str:
    if not values:
        return "n/a"
    return f"{min(values):.3f} / {sum(values) / len(values):.3f} / {max(values):.3f}"


def table(rows: list[dict]) -> str:
    head = ["heads", "seed", "train steps", "train s", "held-out loss", "acc", "EOS acc",
            "AUC min/mean/max", "s-acc min/mean/max", "l-acc min/mean/max", "own-acc min/mean/max",
            "uniform acc", "uniform EOS acc"]
    lines = ["| " + " | ".join(head) + " |", "|" + "---|" * len(head)]
    for r in rows:
        rep, a = r["report"], r.get("analysis") or {}
        curve_loss = rep["curve"].get("held_out_loss") or [None]
        lines.append("| " + " | ".join([
            str(rep["heads"]), str(rep["seed"]), str(rep["steps_done"]), f"{rep['seconds']:.0f}", _f(curve_loss[-1], 4),
            _f(a.get("acc")), _f(a.get("eos_acc")), _spread(a.get("auc")), _spread(a.get("s_acc")),
            _spread(a.get("l_acc")), _spread(a.get("own_acc")), _f(a.get("uniform_acc")), _f(a.get("uniform_eos_acc")),
        ]) + " |")
    return "\n".join(lines)


def verdicts(rows: list[dict]) -> list[str]:
    done = [r for r in rows if r.get("analysis")]
    multi = [r for r in done if r["report"]["heads"] > 1]
    if not multi:
        return ["No analysed model with two or more heads: no verdict."]
    heads = [(auc, sacc) for r in multi for auc, sacc in zip(r["analysis"]["auc"], r["analysis"]["s_acc"])]
    strong = sum(auc >= AUC_BAR and sacc >= AUC_BAR for auc, sacc in heads)
    weakest = min(min(auc, sacc) for auc, sacc in heads)
    claim1 = "reproduced" if strong == len(heads) else ("partly reproduced" if strong else "not reproduced")
    broke = [r for r in multi if r["analysis"]["uniform_eos_acc"] < r["analysis"]["eos_acc"] - EOS_DROP]
    drops = [r["analysis"]["eos_acc"] - r["analysis"]["uniform_eos_acc"] for r in multi]
    claim2 = "reproduced" if len(broke) == len(multi) else ("partly reproduced" if broke else "not reproduced")
    return [
        (f"- Pseudo-ensemble (each head alone separates the classes; AUC and s-acc >= {AUC_BAR}): **{claim1}** — "
         f"{strong}/{len(heads)} heads of {len(multi)} models with >= 2 heads pass; weakest head min(AUC, s-acc) = "
         f"{weakest:.3f}."),
        (f"- Uniform weighting breaks EOS (uniform EOS accuracy more than {EOS_DROP} below the model's): **{claim2}** — "
         f"{len(broke)}/{len(multi)} models; EOS-accuracy drop min/mean/max = "
         f"{min(drops):.3f} / {sum(drops) / len(drops):.3f} / {max(drops):.3f}."),
    ]


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0], formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--heads", default="1,2,4", help="head counts, comma-separated (each must divide d_model 32)")
    parser.add_argument("--seeds", default="0,1,2", help="training seeds, comma-separated")
    parser.add_argument("--recipe", default="count01-full", help="training recipe (default count01-full: trained "
                        "to its plateau; count01 is the shipped, shorter one)")
    parser.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    parser.add_argument("--eval-every", type=int, default=500, help="learning-curve spacing in steps")
    parser.add_argument("--cache", default=".count01-study", help="folder of the trained models (reused across runs)")
    parser.add_argument("--n", type=int, default=500, help="test-split examples the analyses run on (seed 7)")
    parser.add_argument("--threads", type=int, default=1, help="torch CPU threads (1 suits a shared small machine)")
    parser.add_argument("--train-only", action="store_true", help="train (or find cached) models, no analysis")
    parser.add_argument("--out", default=None, help="also write the markdown table here")
    args = parser.parse_args(argv)

    import torch

    from analyses.errors import BadInput

    torch.set_num_threads(max(1, args.threads))
    heads, seeds = _ints(args.heads, "--heads"), _ints(args.seeds, "--seeds")
    cache = Path(args.cache)
    try:
        for h in heads:
            for s in seeds:
                _settings(args.recipe, h, s, args.steps)  # every bad setting refused before hours of training
    except BadInput as e:
        print(f"count01_study: error: {e}", file=sys.stderr)
        return 2
    rows = []
    for h in heads:
        for s in seeds:
            report = train_one(cache, args.recipe, h, s, args.steps, args.eval_every)
            rows.append({"report": report})
            print(f"trained heads {h} seed {s}: {report['steps_done']} steps, {report['seconds']:.0f}s", file=sys.stderr)
    analysed = False
    if not args.train_only:
        try:
            import analyses.counting  # noqa: F401
        except ImportError as e:
            print(f"no analyses.counting yet ({e}); training only", file=sys.stderr)
        else:
            analysed = True
            for r in rows:
                r["analysis"] = analyse_one(r["report"]["path"], args.n)
    lines = [f"# Count01 study: recipe {args.recipe}, heads {args.heads}, seeds {args.seeds}", ""]
    if rows:
        rep = rows[0]["report"]
        lines += [(f"Training: batch {rep['batch']}, lr {rep['lr']}, {rep['steps']} steps (cosine, 5% warm-up); "
                   f"analyses on {args.n} test-split examples (seed 7). acc / EOS acc: the model's decision and "
                   f"end-of-sequence accuracy; per-head columns over the model's heads (`analyses.counting`); "
                   f"uniform: every head rescaled to the same spread of its yes-no contribution."), ""]
    lines += [table(rows), ""]
    lines += verdicts(rows) if analysed else ["(not analysed)"]
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        Path(args.out).write_text(text)
    return 0


if __name__ == "__main__":
    sys.exit(main())
