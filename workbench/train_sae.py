"""`workbench train sae --model SPEC --hook NAME`: train a small SAE on a model's activations
(analyses.sae.train) and write it in the SAELens layout, loadable with ``--sae DIR``."""

from __future__ import annotations

import argparse
import sys
import traceback

from analyses.errors import BadInput
from analyses.report import dumps


def build_parser() -> argparse.ArgumentParser:
    from analyses.sae.train import SaeRecipe

    r = SaeRecipe()
    p = argparse.ArgumentParser(prog="workbench train sae", description=(
        "Train a sparse autoencoder on a model's activations at one hook (CPU, minutes) and write it as an "
        "SAELens-layout folder (cfg.json + sae_weights.safetensors). Reports the fraction of variance explained "
        "on held-out prompts."))
    p.add_argument("--model", required=True, help="model spec (toy:NAME, a checkpoint folder, a hub id)")
    p.add_argument("--hook", required=True, help="the activation to read, e.g. blocks.1.hook_resid_pre")
    p.add_argument("--task", default=None, help="collect from this task's training prompts (default: the toy's own)")
    p.add_argument("--corpus", default=None, help="or from a corpus file (text or JSONL with a \"text\" field)")
    p.add_argument("--texts", type=int, default=r.texts, help=f"texts to collect activations from ({r.texts})")
    p.add_argument("--d-sae", type=int, default=r.d_sae, help=f"dictionary size ({r.d_sae})")
    p.add_argument("--sparsity", choices=("l1", "topk"), default=r.sparsity, help="L1 penalty (ReLU) or TopK")
    p.add_argument("--l1", type=float, default=r.l1, help=f"L1 coefficient for --sparsity l1 ({r.l1:g})")
    p.add_argument("--k", type=int, default=r.k, help=f"active features per token for --sparsity topk ({r.k})")
    p.add_argument("--steps", type=int, default=r.steps, help=f"optimizer steps ({r.steps})")
    p.add_argument("--batch", type=int, default=r.batch, help=f"activation vectors per step ({r.batch})")
    p.add_argument("--lr", type=float, default=r.lr, help=f"Adam learning rate ({r.lr:g})")
    p.add_argument("--seed", type=int, default=r.seed)
    p.add_argument("--threads", type=int, default=1, help="torch CPU threads (1: polite on a shared box)")
    p.add_argument("--out", default=None, help="output folder (default ./sae-MODEL-HOOK)")
    p.add_argument("--force", action="store_true", help="write into --out even when it is not empty")
    p.add_argument("--json", action="store_true", help="print the report as JSON")
    return p


def main(argv: list[str]) -> int:
    args = build_parser().parse_args(argv)
    try:
        return _train(args)
    except BadInput as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:
        traceback.print_exc()
        print("workbench: internal error (exit 1); the traceback above is for a bug report", file=sys.stderr)
        return 1


def _recipe(args: argparse.Namespace):
    from analyses.sae.train import SaeRecipe

    for name in ("d_sae", "k", "steps", "batch", "texts"):
        if getattr(args, name) < 1:
            raise BadInput(f"--{name.replace('_', '-')} must be at least 1")
    if args.l1 < 0 or args.lr <= 0:
        raise BadInput("--l1 must be >= 0 and --lr > 0")
    return SaeRecipe(args.d_sae, args.sparsity, args.l1, args.k, args.steps, args.batch, args.lr, args.seed, args.texts)


def _train(args: argparse.Namespace) -> int:
    import torch

    from analyses.corpus import corpus_source
    from analyses.sae.model import save_sae
    from analyses.sae.train import train_and_report
    from analyses.toys import check_out_folder, toy_task
    from sessions.loading import load, quiet_hf
    from workbench.support import training_bar

    recipe = _recipe(args)
    task = args.task or (None if args.corpus else toy_task(args.model))
    corpus_source(args.corpus, task)  # one source of texts, before the model loads
    out = args.out or f"sae-{args.model.replace(':', '-').replace('/', '-')}-{args.hook}"
    check_out_folder(out, args.force)
    torch.set_num_threads(max(1, args.threads))
    quiet_hf()
    lm = load(args.model, device="cpu")
    bar = training_bar("SAE", "relative mse {:.4f}")
    sae, report = train_and_report(lm.hooked, lm.tokenizer, args.hook, recipe, task, args.corpus, progress=bar)
    sys.stderr.write("\n")
    training = {"model": args.model, "task": task, "corpus": args.corpus, **vars(recipe), **report}
    path = save_sae(sae, out, model_name=args.model, hook_layer=_layer(args.hook), training=training)
    report = {"path": str(path), **training}
    if args.json:
        print(dumps(report))
    else:
        print(f"wrote {path}: {sae.describe()}; held-out FVE {report['fve_held_out']:.3f}, L0 {report['l0']:.1f}, "
              f"{report['dead_features']} dead, {report['seconds']:.0f}s; use it with --sae {path}")
    return 0


def _layer(hook: str) -> int:
    parts = hook.split(".")
    return int(parts[1]) if parts[0] == "blocks" and len(parts) > 1 and parts[1].isdigit() else 0
