"""The `workbench` command: the TUI by default, `run ANALYSIS` and `models` headless.

Exit codes (SPEC.md): 0 success, 2 bad input (message on stderr), 1 internal failure.
Heavy imports (torch, transformers) happen inside the commands, so the TUI's first frame and
`--help` do not wait for them.
"""

from __future__ import annotations

import argparse
import os
import sys
import traceback
from typing import Any

from analyses.errors import BadInput
from analyses.registry import Param
from analyses.report import dumps
from analyses.toys import DEFAULT_MODEL
from workbench.text_output import format_result


def _model_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--model", required=True, help="checkpoint dir, cached hub id, or toy:NAME")
    p.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    p.add_argument("--dtype", default="float32", help="float32 (default) | bfloat16 | float16")
    p.add_argument("--device-map", default=None, help="'auto': spread layers over GPUs/CPU/disk (accelerate)")
    p.add_argument("--session", default=None, help="append this run to a session file (created if absent)")


def _add_param(p: argparse.ArgumentParser, param: Param) -> None:
    """A declared parameter as a CLI option. Values stay text here: ``Analysis.bind`` checks and
    converts them, so the CLI and the TUI refuse the same things with the same messages."""
    if param.kind == "bos":
        bos = p.add_mutually_exclusive_group()
        bos.add_argument("--prepend-bos", dest=param.name, action="store_const", const=True, default=None,
                         help=param.help)
        bos.add_argument("--no-prepend-bos", dest=param.name, action="store_const", const=False)
    elif param.kind == "flag":
        p.add_argument(param.flag, dest=param.name, action="store_true", help=param.help)
    else:
        default = f" (default {param.default})" if param.default not in (None, "") and "default" not in param.help else ""
        p.add_argument(param.flag, dest=param.name, required=param.required, metavar=param.metavar,
                       choices=param.choices if param.kind == "choice" else None, default=None,
                       help=param.help + default)


def _row_count(text: str) -> int:
    try:
        k = int(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"a whole number, not {text!r}") from None
    if k < 0:
        raise argparse.ArgumentTypeError(f"0 (every row) or more, not {k}")
    return k


def build_parser() -> argparse.ArgumentParser:
    from analyses.registry import analyses

    parser = argparse.ArgumentParser(
        prog="workbench", description="Interpretability workbench: the TUI, or headless analyses."
    )
    parser.add_argument("--model", dest="tui_model", default=None, help=f"model to open in the TUI (default {DEFAULT_MODEL})")
    parser.add_argument("--device", dest="tui_device", default="auto")
    parser.add_argument("--dtype", dest="tui_dtype", default="float32")
    parser.add_argument("--device-map", dest="tui_device_map", default=None)
    parser.add_argument("--session", dest="tui_sessions", action="append", default=None,
                        help="session file to open (created for --model if absent); repeat to open several")
    sub = parser.add_subparsers(dest="command")

    run = sub.add_parser("run", help="run an analysis without the TUI")
    commands = run.add_subparsers(dest="analysis", required=True)
    for analysis in analyses().values():
        p = commands.add_parser(analysis.name, help=analysis.help, description=f"{analysis.help}. {analysis.doc}")
        _model_args(p)
        for param in analysis.params:
            _add_param(p, param)
        p.add_argument("--edit", dest="edits", action="append", default=None, metavar="EDIT",
                       help="run with this edit of a head's SVD component, undone afterwards (repeatable): "
                            "LxHy:ov:I=SCALE scales OV component I (weights), LxHy:out:I=SCALE[@POS] or "
                            "LxHy:out:I+=DIST[@POS] the head's output (activations); see docs/composition.md")
        p.add_argument("--steer", dest="steers", action="append", default=None, metavar="RUN*SCALE[@LAYER][:fromPOS]",
                       help="run with a steering vector of the --session (run RUN, a steering-vector run) added "
                            "SCALE times at LAYER's resid_pre or a hook name (default: where it was taken), at "
                            "every position or from POS on (repeatable), e.g. 3*4@1; a probe run's direction too")
        p.add_argument("--project-out", dest="projections", action="append", default=None,
                       metavar="RUN[@LAYER][:fromPOS]",
                       help="run with the direction of the --session's run RUN (a probe or steering-vector run) "
                            "projected out of LAYER's resid_pre or a hook name (default: where it was taken), "
                            "at every position or from POS on (repeatable), e.g. 5@1")
        p.add_argument("--json", action="store_true", help="print one JSON object")
        p.add_argument("--no-memory-check", action="store_true",
                       help="run even when the run's estimated memory exceeds what the device has free")
        if analysis.result == "table" and "top" not in {q.name for q in analysis.params}:
            p.add_argument("--top", dest="show_top", type=_row_count, default=None,
                           help="text output: show the K rows of largest magnitude (0: every row)")

    models = sub.add_parser("models", help="list built-in and locally cached models")
    models.add_argument("--json", action="store_true")

    doctor = sub.add_parser("doctor", help="versions, devices and free memory, the parity check, timings, limits",
                            description="What this box is and what it can run: versions (torch, CUDA, transformers, "
                                        "textual, mamba-ssm), devices and free memory, the parity check of a model, "
                                        "the time of one forward and one sweep batch, and whether the largest cached "
                                        "model fits.")
    doctor.add_argument("--model", default=None, help=f"the model to check (default {DEFAULT_MODEL})")
    doctor.add_argument("--device", default="auto", help="cpu | cuda | auto (default)")
    doctor.add_argument("--dtype", default="float32", help="float32 (default) | bfloat16 | float16")
    doctor.add_argument("--json", action="store_true", help="print one JSON object")

    from analyses.toys.recipes import TRAIN_RECIPES

    train = sub.add_parser("train", help="train a built-in toy model from scratch (CPU, minutes)",
                           description="Train a toy from scratch; Ctrl-C stops it and still writes the checkpoint so far.")
    train.add_argument("name", help=" | ".join(TRAIN_RECIPES) + " | sae (an SAE on a model's activations: "
                       "workbench train sae --help)")
    train.add_argument("--steps", type=int, default=None, help="optimizer steps (default: the recipe's)")
    train.add_argument("--out", default=None, help="output checkpoint directory (default ./toy-NAME)")
    train.add_argument("--heads", type=int, default=None,
                       help="attention heads (default: the recipe's); d_model is kept, so it must divide d_model")
    train.add_argument("--seed", type=int, default=None, help="seed of the initial weights and of the data stream "
                       "(default: the recipe's)")
    train.add_argument("--eval-every", type=int, default=0, metavar="N",
                       help="score a fixed held-out sample every N steps and print the learning curve (0: never)")
    train.add_argument("--force", action="store_true",
                       help="train into --out even when it is not empty (its files are written over)")
    train.add_argument("--json", action="store_true", help="print the run report (learning curve included) as JSON")
    return parser


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else list(argv)
    if argv[:2] == ["train", "sae"]:  # its own options (model, hook, dictionary): workbench/train_sae.py
        from workbench.train_sae import main as train_sae

        return train_sae(argv[2:])
    args = build_parser().parse_args(argv)
    try:
        if args.command == "run":
            return _run(args)
        if args.command == "models":
            return _models(args)
        if args.command == "doctor":
            return _doctor(args)
        if args.command == "train":
            return _train(args)
        from workbench.app import run_tui

        return run_tui(args.tui_model, args.tui_device, args.tui_dtype, args.tui_device_map, args.tui_sessions)
    except BadInput as e:
        print(f"workbench: error: {e}", file=sys.stderr)
        return 2
    except BrokenPipeError:  # `workbench run ... | head`: the reader has gone; nothing to report
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())
        return 0
    except KeyboardInterrupt:
        return 130
    except Exception:  # an internal failure: say so, with the traceback for the bug report
        traceback.print_exc()
        print("workbench: internal error (exit 1); the traceback above is for a bug report", file=sys.stderr)
        return 1


def _run(args: argparse.Namespace) -> int:
    import sqlite3

    from analyses.registry import get
    from sessions.loading import load, quiet_hf
    from sessions.workspace import check_new_path

    analysis = get(args.analysis)
    params = analysis.bind(resolved_params(analysis, args))  # refused before loading
    from analyses.edit_spec import parse_edits

    edits = [e.text for e in parse_edits(args.edits)]  # a malformed edit too
    quiet_hf()
    from sessions.store import Session, check_same_model

    session = None
    if args.session is not None:
        if os.path.exists(args.session):
            session = Session.open(args.session)  # a bad session file fails before the model loads
        else:
            check_new_path(args.session)
    loaded = load(args.model, device=args.device, dtype=args.dtype, device_map=args.device_map)
    from analyses.parity import parity_warning

    warning = parity_warning(loaded.info)
    if warning:
        print(f"workbench: warning: {warning}", file=sys.stderr)
    params = analysis.bind(resolved_params(analysis, args, loaded.hooked))  # the defaults that follow its shape
    if not args.no_memory_check:
        from analyses.cost import check_memory

        check_memory(loaded, analysis, params, override="--no-memory-check runs it anyway")  # exit 2, before any work
    edits += _directions(args.steers, args.projections, session, loaded.hooked.shape.n_layers)
    if args.session is not None:
        try:
            session = session or Session.create(args.session, loaded.info)
        except (OSError, sqlite3.Error) as e:
            raise BadInput(f"{args.session}: cannot create the session file ({e})") from None
        check_same_model(session, loaded.info)
    from analyses.preparation import watching
    from workbench.support import StderrProgress

    from workbench.support import oom_text, out_of_memory

    shown = StderrProgress(analysis.name)  # on a terminal, how far it has got
    try:
        with watching(shown.preparing):
            result = analysis(loaded, params, shown.progress, edits=edits)
    except Exception as e:  # out of memory is the run's size, not a bug: exit 2, saying how to shrink it
        if not out_of_memory(e):
            raise
        if session is not None:
            session.close()
        raise BadInput(oom_text(e, analysis, params, loaded)) from None
    finally:
        shown.clear()
    if session is not None:
        try:
            session.append_run(analysis.name, params, result, loaded.info)
        except (OSError, sqlite3.Error) as e:
            raise BadInput(f"{args.session}: the run could not be saved ({e}); earlier runs are intact") from None
        finally:
            session.close()
    facts = analysis.facts(result)
    if args.json:  # strict JSON: NaN and infinities as null
        print(dumps({"model": loaded.info, **result.to_json(), "headline": facts}))
    else:
        print(format_result(result, getattr(args, "show_top", None), loaded.info, facts,
                            top_option=hasattr(args, "show_top")))
    return 0


def _directions(steers: list[str] | None, projections: list[str] | None, session: Any, n_layers: int) -> list[Any]:
    """``--steer RUN*SCALE...`` and ``--project-out RUN@...`` as standing interventions, each
    direction read from the session's run (a steering-vector or probe run)."""
    if not steers and not projections:
        return []
    from analyses.steering import STEER_SYNTAX, projection_from_result, steer_from_result

    if session is None:
        raise BadInput("--steer and --project-out name a run of a session: give --session FILE")
    runs = {r.id: r for r in session.runs()}

    def run_of(text: str, option: str, run: str, syntax: str):
        if not run.strip().isdigit():
            raise BadInput(f"{option} {text!r}: write {syntax}")
        found = runs.get(int(run))
        if found is None:
            raise BadInput(f"{option} {text!r}: the session has no run {run.strip()}")
        return found.result, f"run{int(run)}"

    out = []
    for text in steers or []:
        run, star, rest = text.partition("*")
        if not star:
            raise BadInput(f"--steer {text!r}: write RUN*{STEER_SYNTAX}")
        out.append(steer_from_result(*run_of(text, "--steer", run, f"RUN*{STEER_SYNTAX}"), rest, n_layers))
    for text in projections or []:
        run, at, rest = text.partition("@")
        run, colon, start = run.partition(":")
        where = at + rest + (colon + start if colon else "")
        out.append(projection_from_result(*run_of(text, "--project-out", run, "RUN[@LAYER|@HOOK][:fromPOS]"), where, n_layers))
    return out


def resolved_params(analysis, args: argparse.Namespace, hooked: Any = None) -> dict[str, Any]:
    """The options given, and for the rest the defaults resolved for the model (its own task, its
    last layer: ``registry.defaults``), as the TUI's forms open on them."""
    from analyses.registry.defaults import ModelFacts, resolve_defaults

    given = {p.name: getattr(args, p.name) for p in analysis.params}
    return resolve_defaults(analysis, ModelFacts.of(args.model, hooked), given)


def _train(args: argparse.Namespace) -> int:
    import signal
    import threading

    from sessions.loading import quiet_hf
    from workbench.support import training_bar

    quiet_hf()
    from analyses.toys.train import resolve_recipe, train_with_curve

    resolve_recipe(args.name, args.heads, args.seed)  # a bad name, head count or seed: exit 2 before anything
    out = args.out or f"toy-{args.name}"
    stop = threading.Event()
    bar = training_bar(args.name, "loss {:.3f}")

    def point(p: dict) -> None:
        eos = "" if p["eos_accuracy"] != p["eos_accuracy"] else f" eos_accuracy {p['eos_accuracy']:.3f}"  # NaN: no EOS
        sys.stderr.write(f"\nstep {p['step']}: loss {p['loss']:.4f} held-out loss {p['held_out_loss']:.4f} "
                         f"accuracy {p['accuracy']:.3f}{eos}\n")

    def interrupted(signum, frame) -> None:  # the first Ctrl-C stops after this step; a second one aborts
        stop.set()
        signal.signal(signal.SIGINT, signal.default_int_handler)

    main_thread = threading.current_thread() is threading.main_thread()  # only there can a handler be set
    previous = signal.signal(signal.SIGINT, interrupted) if main_thread else None
    try:
        report = train_with_curve(args.name, out, steps=args.steps, progress=bar, heads=args.heads, seed=args.seed,
                                  should_stop=stop.is_set, eval_every=args.eval_every, on_eval=point,
                                  force=args.force)
    finally:
        if main_thread:
            signal.signal(signal.SIGINT, previous)
    sys.stderr.write("\n")
    if args.json:
        print(dumps(report))
    path = report["path"]
    if report["cancelled"]:
        print(f"stopped at step {report['steps_done']}/{report['steps']}; wrote the checkpoint so far to {path}",
              file=sys.stderr if args.json else sys.stdout)
        return 130
    if not args.json:
        print(f"wrote {path} ({report['heads']} heads, seed {report['seed']}, {report['steps_done']} steps, "
              f"{report['seconds']:.0f}s); load it with --model {path}")
    return 0


def _doctor(args: argparse.Namespace) -> int:
    from sessions.loading import DTYPES, quiet_hf

    if args.dtype not in DTYPES:
        raise BadInput(f"--dtype must be one of {', '.join(DTYPES)}")
    quiet_hf()
    from workbench.doctor import report, text

    rep = report(args.model, args.device, args.dtype)
    print(dumps(rep) if args.json else text(rep))
    return 0


def _models(args: argparse.Namespace) -> int:
    from sessions.catalogue import list_models

    models = list_models()
    if args.json:
        print(dumps({"models": models}))
        return 0
    width = max(len(m["spec"]) for m in models)
    for m in models:
        mark = "" if m.get("supported", True) else "  (unsupported architecture)"
        print(f"{m['spec']:<{width}}  {m['family'] or '?':<9}  {m['about']}{mark}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
