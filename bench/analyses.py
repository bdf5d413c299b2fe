"""Every registered analysis on a toy and on a GPT-2-small shape (random weights, 50k vocabulary):
wall time, forwards (and backwards) used against the analysis's floor (analyses.costs), peak
memory grown during the run, and the estimator's memory for it. Forwards are counted by the hooked
model (whole-model passes of one sequence; a run from layer l counts its share of the layers). A
neuron's trimming search depends on its texts: the floor adds what a one-by-one search scored.

Each analysis runs on the toy made for it (its task's toy; toy:ioi-mamba for Mamba-only ones,
toy:ioi otherwise) and on the GPT-2 shape where it applies, with small inputs; a cancellable one
stops at ``--cap`` seconds (its row then says "capped": the forwards are those made so far).

    .venv/bin/python -m bench.analyses [--only patch,eap] [--models toy,gpt2-small] [--cap 20]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from contextlib import contextmanager
from typing import Any

from bench.common import timed

PROMPT = {"prompt": "When Mary and John went to the store , John gave a drink to", "answer": " Mary"}
PAIRS = {"task": "ioi", "n": 4}
TEXTS = {"task": "ioi", "n": 64}
# Parameters beyond the CLI's defaults: what each analysis needs (required ones) and small sizes.
PARAMS: dict[str, dict[str, Any]] = {
    "dla": {**PROMPT, "by": "neuron"}, "logit-lens": PROMPT, "attention": {"prompt": PROMPT["prompt"]},
    "neuron-heads-prompt": {"prompt": PROMPT["prompt"]},
    "inhibition": {"prompt": PROMPT["prompt"], "sender": "L0H0", "receiver": "L1H0", "positions": "1,3"},
    "inhibition-task": {"n": 8, "sender": "L0H0", "receiver": "L1H0"},
    "patch": {**PAIRS, "site": "head_out"}, "attrib": {**PAIRS, "site": "resid_pre"}, "eap": {**PAIRS, "top": 20},
    "eap-curve": {**PAIRS, "ks": "1,10,100"}, "path-patch": {**PAIRS, "senders": "L0H0", "receivers": "L1H0.q"},
    "eval": {"task": "ioi", "n": 64},
    "mamba-removal": {"task": "ioi-abc", "n": 4}, "mamba-greedy": {"task": "ioi-abc", "n": 4},
    "conv-slices": {"task": "ioi-abc", "n": 4}, "eap-pos": {"task": "ioi-abc", "n": 4},
    "eap-circuit": {"task": "ioi", "n": 4}, "name-arith": {"n": 20, "n_avg": 50},
    "erasure-pr": TEXTS, "erasure-stream": TEXTS, "erasure-scatter": TEXTS, "erasure-causal": TEXTS,
    "erasure-effect": TEXTS, "erasure-prompts": TEXTS,
    "neuron-max-acts": {**TEXTS, "neuron": 0}, "neuron-heads": {**TEXTS, "neuron": 0},
    "neuron-explain": {**TEXTS, "neuron": 0}, "neuron-ablation": {**TEXTS, "neuron": 0},
    "neuron-baseline": {**TEXTS, "k": 2}, "neuron-congruence": {}, "count-heads": {"n": 40},
    "count-attention": {"n": 40}, "count-swap": {"n": 40},
    "count-combine": {"n": 40}, "recall-edit": {"n": 10, "comps": 1, "scales": "0"},
    "train-toy": {"steps": 5, "eval_every": 5},
    "erasure-verdict": TEXTS, "erasure-modified": TEXTS, "erasure-input": TEXTS, "erasure-importance": TEXTS,
    "generate": {"prompt": PROMPT["prompt"], "max_tokens": 8},
    **{name: {"task": "recall", "senders": "L0H0,L0H1", "receiver": "L1H0"}
       for name in ("positional-subspace", "centroid-traversal", "centroid-replace")},
    "steering-vector": PAIRS, "steering-sweep": PAIRS, "state-cosine": {"task": "ioi-abc", "n": 4},
    "probe": {"task": "ioi", "n": 64},
    "sae-features": {"prompt": PROMPT["prompt"]}, "sae-dla": PROMPT, "sae-max-acts": {**TEXTS, "feature": 3},
    "sae-corpus": TEXTS,
}
# On the GPT-2 shape, smaller samples still: its forwards cost ~100x a toy's.
GPT2_SMALLER: dict[str, dict[str, Any]] = {
    **{name: {"n": 2} for name in ("patch", "attrib", "eap", "eap-curve", "path-patch", "eap-circuit")},
    **{name: {"n": 16} for name in PARAMS if name.startswith(("erasure-", "neuron-")) and "n" in PARAMS[name]},
    **{name: {"n": 10} for name in ("count-heads", "count-attention", "count-swap", "count-combine", "recall-edit")},
    "count-attention": {"n": 10, "w01s": "1,2", "w02s": "0"}, "inhibition-task": {"n": 2}, "eval": {"n": 32},
    "patch": {"n": 2, "site": "resid_pre"},
}
TASK_TOYS = {"recall": "toy:recall", "count01": "toy:count01", "ioi-abc": "toy:ioi-mamba"}


def load_model(spec: str):
    """A loaded model by spec (``gpt2-small``: the GPT-2-small shape of bench.shapes), after one
    forward: the loader maps the weights and reads them on first use, which a first run's peak
    memory would otherwise count."""
    import torch

    from sessions.loading import load, quiet_hf

    quiet_hf()
    if spec == "gpt2-small":
        from bench.shapes import gpt2_small

        spec = gpt2_small()
    lm = load(spec, device="cpu")
    lm.hooked.run(torch.tensor([[2, 4, 5]]))
    lm.hooked.forwards = 0.0
    return lm


def measure(lm, name: str, given: dict[str, Any], time_cap: float | None) -> dict[str, Any]:
    """Run analysis ``name`` once: wall seconds, passes made, memory grown, the estimate."""
    from analyses.cost import MB, estimate_run
    from analyses.errors import Cancelled
    from analyses.registry import get

    analysis = get(name)
    if name == "train-toy":
        given = {**given, "out": tempfile.mkdtemp(prefix="bench-train-")}
    params = analysis.bind(given)
    cost = estimate_run(lm, analysis, params)
    deadline = None if time_cap is None else time.monotonic() + time_cap
    stopped = [False]

    def should_stop() -> bool:
        stopped[0] = stopped[0] or (deadline is not None and time.monotonic() > deadline)
        return stopped[0]

    hm = lm.hooked
    f0, b0 = hm.forwards, hm.backwards
    def run() -> Any:
        try:
            return analysis(lm, params, None, should_stop)
        except Cancelled:  # stopped at the cap before it had a partial result to return
            return None

    with trimming_floor(hm) as searched:
        t = timed(run, fresh_peak=True)
    return {"wall": t.wall, "forwards": hm.forwards - f0, "backwards": hm.backwards - b0,
            "floor": cost.floor + searched[0],
            "floor_backwards": cost.floor_backwards, "est_forwards": cost.forwards, "grown_mb": t.grown,
            "rss_before_mb": t.rss_before, "est_mb": cost.bytes / MB, "capped": stopped[0]}


@contextmanager
def trimming_floor(hm):
    """What a one-by-one trimming search would score beyond the one start per text the estimator's
    floor counts (it depends on the texts: known only once run), in passes: yields a list whose
    one item grows as texts are trimmed."""
    import analyses.neurons.max_acts as max_acts

    real, searched = max_acts.latest_start, [0.0]

    def counted(acts_by_start, end, original, ratio, first=0, batch=16):
        per_row: list[float] = []

        def scored(starts):
            f0 = hm.forwards
            out = acts_by_start(starts)
            per_row.append((hm.forwards - f0) / len(starts))
            return out

        start = real(scored, end, original, ratio, first, batch)
        searched[0] += (end - start) * (per_row[0] if per_row else 0.0)
        return start

    max_acts.latest_start = counted
    try:
        yield searched
    finally:
        max_acts.latest_start = real


def toy_for(analysis) -> str:
    """The shipped toy made for an analysis (erasure: the fixture with a planted eraser)."""
    for task in (*analysis.tasks, PARAMS.get(analysis.name, {}).get("task")):
        if task in TASK_TOYS:
            return TASK_TOYS[task]
    if analysis.name.startswith("count-"):
        return "toy:count01"
    if analysis.name.startswith("erasure-"):
        return "toy:erasure-planted"
    return "toy:ioi-mamba" if not analysis.available_for("gpt2") else "toy:ioi"


def _row(model: str, name: str, m: dict[str, Any] | str) -> str:
    if isinstance(m, str):
        return f"{model:13} {name:20} {m}"
    back = f"{m['backwards']:.0f}/{m['floor_backwards']:.0f}" if m["backwards"] or m["floor_backwards"] else "-"
    ratio = m["forwards"] / m["floor"] if m["floor"] else float("nan")
    cap = "  capped" if m["capped"] else ""
    return (f"{model:13} {name:20} {m['wall']:7.2f} {m['forwards']:10.1f} {m['floor']:10.1f} {ratio:6.2f} "
            f"{back:>9} {m['grown_mb']:8.0f} {m['est_mb']:8.0f}{cap}")


def main() -> None:
    from analyses.registry import analyses

    ap = argparse.ArgumentParser()
    ap.add_argument("--only", default="", help="comma list of analyses (default: every registered one)")
    ap.add_argument("--models", default="toy,gpt2-small", help="toy: each analysis's toy; gpt2-small: the shape")
    ap.add_argument("--cap", type=float, default=20.0, help="seconds a cancellable analysis may run")
    args = ap.parse_args()
    chosen = [a for a in analyses().values() if not args.only or a.name in args.only.split(",")]
    loaded: dict[str, Any] = {}
    header = (f"{'model':13} {'analysis':20} {'wall s':>7} {'forwards':>10} {'floor':>10} {'x flr':>6} "
              f"{'bwd/flr':>9} {'peak MB':>8} {'est MB':>8}")
    lines = []
    for which in args.models.split(","):
        for a in chosen:
            spec = toy_for(a) if which == "toy" else which
            if which != "toy" and not a.available_for("gpt2"):
                lines.append(_row(which, a.name, "n/a (Mamba only)"))
                continue
            if spec not in loaded:
                loaded.clear()  # one model in memory at a time
                loaded[spec] = load_model(spec)
            try:
                given = {**PARAMS.get(a.name, {}), **(GPT2_SMALLER.get(a.name, {}) if which != "toy" else {})}
                m = measure(loaded[spec], a.name, given, args.cap)
            except Exception as e:  # a row that says why, not a lost table
                m = f"failed: {type(e).__name__}: {str(e)[:80]}"
            lines.append(_row(spec if which == "toy" else which, a.name, m))
            print(lines[-1], file=sys.stderr, flush=True)
    print(f"cpu, {args.cap:g} s cap per cancellable analysis; forwards in whole-model passes of one sequence; "
          "peak MB: memory grown during the run; est MB: the estimator's")
    print(header)
    print("\n".join(lines))


if __name__ == "__main__":
    main()
