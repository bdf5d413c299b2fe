"""The `workbench` command: the TUI by default, `run ANALYSIS` and `models` headless.

Exit codes (SPEC.md): 0 success, 2 bad input (message on stderr), 1 internal failure.
Heavy imports (torch, transformers) happen inside the commands, so the TUI's first frame and
`--help` do not wait for them.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import traceback
from typing import Any

from analyses.errors import BadInput
from analyses.results import Grid
from analyses.toys import DEFAULT_MODEL

TEXT_ROW_LIMIT = 60  # above this many rows, text output shows the largest by default


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint dir, cached hub id, or toy:NAME")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    p.add_argument("--dtype", default="float32", help="float32 (default) | bfloat16 | float16")
    p.add_argument("--device-map", default=None, help="'auto': spread layers over GPUs/CPU/disk (accelerate)")
    p.add_argument("--session", default=None, help="append this run to a session file (created if absent)")


def _prompt_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--prompt", required=True)
    p.add_argument("--answer", required=True, help="the answer token as the tokenizer spells it, e.g. ' Mary'")
    p.add_argument("--distractor", default=None, help="attribute answer - distractor instead")
    p.add_argument("--pos", type=int, default=-1, help="position to attribute (default: last)")
    bos = p.add_mutually_exclusive_group()
    bos.add_argument("--prepend-bos", dest="prepend_bos", action="store_const", const=True, default=None)
    bos.add_argument("--no-prepend-bos", dest="prepend_bos", action="store_const", const=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.add_argument("--top", type=int, default=None, help="text output: show the K rows of largest magnitude")


def _pair_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--clean", help="clean prompt")
    p.add_argument("--corrupt", help="corrupted prompt (same token length)")
    p.add_argument("--answer", help="the clean prompt's answer token")
    p.add_argument("--distractor", help="the corrupted prompt's answer token")
    p.add_argument("--pairs", help="JSONL file of {clean, corrupt, answer, distractor} (aligned prompts)")
    p.add_argument("--metric", default="logit_diff", choices=["logit_diff", "nld", "prob", "tokens"],
                   help="nld: normalized logit difference; tokens: total probability of --tokens")
    p.add_argument("--tokens", default=None, help="comma list of tokens for --metric tokens, e.g. ' Mary, John'")
    bos = p.add_mutually_exclusive_group()
    bos.add_argument("--prepend-bos", dest="prepend_bos", action="store_const", const=True, default=None)
    bos.add_argument("--no-prepend-bos", dest="prepend_bos", action="store_const", const=False)
    p.add_argument("--json", action="store_true", help="print one JSON object")


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="workbench", description="Interpretability workbench: the TUI, or headless analyses."
    )
    parser.add_argument("--model", dest="tui_model", default=DEFAULT_MODEL, help="model to open in the TUI")
    parser.add_argument("--device", dest="tui_device", default="auto")
    parser.add_argument("--dtype", dest="tui_dtype", default="float32")
    parser.add_argument("--device-map", dest="tui_device_map", default=None)
    parser.add_argument("--session", dest="tui_sessions", action="append", default=None,
                        help="session file to open (created for --model if absent); repeat to open several")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run an analysis without the TUI")
    analyses = run.add_subparsers(dest="analysis", required=True)
    dla = analyses.add_parser("dla", help="direct logit attribution")
    _model_args(dla)
    _prompt_args(dla)
    dla.add_argument("--by", default="layer", choices=["layer", "head", "neuron"])
    lens = analyses.add_parser("logit-lens", help="residual stream after each layer, unembedded")
    _model_args(lens)
    _prompt_args(lens)

    ev = analyses.add_parser("eval", help="task accuracy, overall and per variant")
    _model_args(ev)
    what = ev.add_mutually_exclusive_group(required=True)
    what.add_argument("--task", help="ioi | ioi-abc | count01 | recall")
    what.add_argument("--pairs", help="a JSONL file of {clean, corrupt, answer, distractor}: scores the clean prompts")
    ev.add_argument("--n", type=int, default=500, help="number of prompts (default 500)")
    ev.add_argument("--seed", type=int, default=0)
    ev.add_argument("--split", default="test", help="test (held out from training; default) | train | all")
    ev.add_argument("--json", action="store_true")

    patch = analyses.add_parser("patch", help="activation patching sweep over layer x position (x head)")
    _model_args(patch)
    _pair_args(patch)
    patch.add_argument("--site", required=True,
                       help="resid_pre | attn_out | mlp_out | head_out | head_q | head_k | head_v | head_pattern; "
                            "Mamba: resid_pre | layer_in | out_proj | conv | ssm_in")
    patch.add_argument("--direction", default="denoise", choices=["denoise", "noise", "resample", "mean"])
    patch.add_argument("--all-pos", action="store_true", help="patch all positions at once (grid over layers)")
    patch.add_argument("--positions", default=None, metavar="LIST", help="sweep only these positions, e.g. 9,-1")
    patch.add_argument("--heads", default=None, metavar="LIST", help="head sites: sweep only these heads, e.g. 0,3")

    attrib = analyses.add_parser("attrib", help="attribution patching: the linear estimate of a patching sweep")
    _model_args(attrib)
    _pair_args(attrib)
    attrib.add_argument("--site", required=True, help="as for 'run patch'")
    attrib.add_argument("--all-pos", action="store_true")
    eap = analyses.add_parser("eap", help="edge attribution patching (EAP, EAP-IG) over the whole edge graph")
    _model_args(eap)
    _pair_args(eap)
    eap.add_argument("--ig", type=int, default=0, metavar="STEPS", help="EAP-IG with this many interpolation steps")
    eap.add_argument("--positional", action="store_true", help="one score per (edge, position)")
    eap.add_argument("--top", type=int, default=None, help="keep the top K edges and measure their faithfulness")
    eap.add_argument("--threshold", type=float, default=None, help="or keep the edges with |score| >= T")
    path = analyses.add_parser("path-patch", help="senders' clean outputs into receivers' inputs only")
    _model_args(path)
    _pair_args(path)
    path.add_argument("--senders", required=True, help="comma list of writers: input, L0H1, L0MLP (Mamba: L3)")
    path.add_argument("--receivers", required=True, help="comma list of readers: L1H2.q, L1H2.k, L1MLP, logits")

    models = sub.add_parser("models", help="list built-in and locally cached models")
    models.add_argument("--json", action="store_true")

    train = sub.add_parser("train", help="train a built-in toy model from scratch (CPU, minutes)")
    train.add_argument("name", help="ioi | ioi-mamba | count01 | recall")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    train.add_argument("--out", default=None, help="output checkpoint directory (default ./toy-NAME)")
    return parser


def main(argv: list[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "models":
            return _models(args)
        if args.command == "train":
            return _train(args)
        from workbench.app import run_tui

        return run_tui(args.tui_model, args.tui_device, args.tui_dtype, args.tui_device_map, args.tui_sessions)
    except BadInput as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        return 130
    except Exception:  # an internal failure: say so, with the traceback for the bug report
        traceback.print_exc()
        print("workbench: internal error (exit 1); the traceback above is for a bug report", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    from sessions.loading import load, quiet_hf

    quiet_hf()
    from sessions.runs import run_analysis
    from sessions.store import Session, check_same_model

    session = None
    if args.session is not None and os.path.exists(args.session):
        session = Session.open(args.session)  # a bad session file fails before the model loads
    loaded = load(args.model, device=args.device, dtype=args.dtype, device_map=args.device_map)
    if args.session is not None:
        session = session or Session.create(args.session, loaded.info)
        check_same_model(session, loaded.info)
    if args.analysis == "eval":
        params: dict[str, Any] = dict(task=args.task, pairs=args.pairs, n=args.n, seed=args.seed, split=args.split)
    elif args.analysis in ("patch", "attrib", "eap", "path-patch"):
        params = dict(clean=args.clean, corrupt=args.corrupt, answer=args.answer, distractor=args.distractor,
                      pairs=args.pairs, prepend_bos=args.prepend_bos, metric=args.metric, tokens=args.tokens)
        if args.analysis == "patch":
            params.update(site=args.site, direction=args.direction, all_pos=args.all_pos, positions=args.positions,
                          heads=args.heads)
        elif args.analysis == "attrib":
            params.update(site=args.site, all_pos=args.all_pos)
        elif args.analysis == "eap":
            params.update(ig=args.ig, positional=args.positional, top=args.top, threshold=args.threshold)
        else:
            params.update(senders=args.senders, receivers=args.receivers)
    else:
        params = dict(prompt=args.prompt, answer=args.answer, distractor=args.distractor, pos=args.pos,
                      prepend_bos=args.prepend_bos)
    if args.analysis == "dla":
        params["by"] = args.by
    result = run_analysis(loaded, args.analysis, **params)
    if session is not None:
        session.append_run(args.analysis, params, result)
        session.close()
    if args.json:
        print(json.dumps({"model": loaded.info, **result.to_json()}))
    elif isinstance(result, Grid):
        print(format_grid(result, loaded.info))
    else:
        print(format_table(result, getattr(args, "top", None), loaded.info))
    return 0


def format_grid(grid: Grid, info: dict | None = None) -> str:
    """A grid as text: one line per layer (and head), one column per position."""
    meta = grid.meta
    lines = [f"model   {info['spec']} ({info['model_type']}, {info['dtype']}, {info['device']})"] if info else []
    if "prompt_tokens" in meta:
        lines.append("tokens  " + " ".join(f"[{t}]" for t in meta["prompt_tokens"]))
    lines.append(f"{grid.analysis} {meta.get('site', '')}  metric {meta.get('metric')}  "
                 f"clean {meta.get('clean', float('nan')):+.4f}  corrupt {meta.get('corrupt', float('nan')):+.4f}")
    rows: list[tuple[str, list[float]]] = []
    if grid.axes[-1] == "head" and "pos" in grid.axes:  # layer x pos x head: a row per (layer, head)
        for li, layer in enumerate(grid.values):
            for hi, head in enumerate(grid.labels["head"]):
                rows.append((f"{grid.labels['layer'][li]}{head}", [cell[hi] for cell in layer]))
        columns = grid.labels["pos"]
    elif len(grid.axes) == 2:
        rows = list(zip(grid.labels[grid.axes[0]], grid.values))
        columns = grid.labels[grid.axes[1]]
    else:
        rows = [(label, [v]) for label, v in zip(grid.labels[grid.axes[0]], grid.values)]
        columns = ["value"]
    width = max(len(r[0]) for r in rows)
    lines.append(" " * width + "  " + " ".join(f"{c[:9]:>9}" for c in columns))
    for label, values in rows:
        lines.append(f"{label:<{width}}  " + " ".join(f"{v:>+9.3f}" for v in values))
    return "\n".join(lines)


def format_table(table, top: int | None, info: dict | None = None) -> str:
    """A readable, aligned text table of a result; large tables show their largest rows."""
    meta = table.meta
    lines = []
    if info:
        lines.append(f"model   {info['spec']} ({info['model_type']}, {info['dtype']}, {info['device']})")
    if "prompt_tokens" in meta:
        lines.append("tokens  " + " ".join(f"[{t}]" for t in meta["prompt_tokens"]))
    if "logit" in meta:
        target = repr(meta.get("answer"))
        if meta.get("distractor"):
            target += f" - {meta['distractor']!r}"
        lines.append(f"logit   {meta['logit']:+.6f}  ({target} at position {meta.get('pos')})")
    if "circuit" in meta:
        c = meta["circuit"]
        lines.append(f"circuit {c['edges_kept']} of {c['edges_total']} edges: faithfulness {c['faithfulness']:.4f} "
                     f"(metric {c['circuit']:+.4f}; clean {c['clean']:+.4f}, corrupt {c['corrupt']:+.4f})")
    if "accuracy" in meta:
        lines.append(f"task    {meta['task']}: accuracy {meta['accuracy']:.4f}, mean logit diff "
                     f"{meta['mean_logit_diff']:+.4f} over {meta['n']} prompts")
        if "target_accuracy" in meta:
            lines.append(f"        end-of-sequence token after the answer: accuracy {meta['target_accuracy']:.4f}")
    n = len(table.labels)
    if top is None and n > TEXT_ROW_LIMIT:
        top = 30
    shown = sorted(table.top(top)) if top else range(n)
    names = list(table.columns)
    width = max([5] + [len(table.labels[i]) for i in shown])
    lines.append("")
    lines.append(f"{'label':<{width}}  " + "  ".join(f"{c:>12}" for c in names))
    for i in shown:
        cells = [table.columns[c][i] for c in names]
        lines.append(f"{table.labels[i]:<{width}}  " + "  ".join(_cell(v) for v in cells))
    if top and n > len(shown):
        lines.append(f"... {n - len(shown)} more rows (largest |value| shown; --top 0 or --json for all)")
    return "\n".join(lines)


def _cell(v: Any) -> str:
    if isinstance(v, float):
        return f"{v:>+12.6f}"
    return f"{v!s:>12}"


def _train(args: argparse.Namespace) -> int:
    import time

    from sessions.loading import quiet_hf

    quiet_hf()
    from analyses.toys.train import train

    out = args.out or f"toy-{args.name}"
    start = time.monotonic()

    def bar(step: int, total: int, loss: float) -> None:
        filled = int(30 * step / total)
        sys.stderr.write(f"\rtraining {args.name} [{'#' * filled}{'.' * (30 - filled)}] {step}/{total} "
                         f"loss {loss:.3f} {time.monotonic() - start:.0f}s")
        sys.stderr.flush()

    path = train(args.name, out, steps=args.steps, progress=bar)
    sys.stderr.write("\n")
    print(f"wrote {path}; load it with --model {path}")
    return 0


def _models(args: argparse.Namespace) -> int:
    from sessions.catalogue import list_models

    models = list_models()
    if args.json:
        print(json.dumps({"models": models}))
        return 0
    width = max(len(m["spec"]) for m in models)
    for m in models:
        mark = "" if m.get("supported", True) else "  (unsupported architecture)"
        print(f"{m['spec']:<{width}}  {m['family'] or '?':<9}  {m['about']}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
