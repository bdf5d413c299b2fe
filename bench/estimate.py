"""The run-cost estimator (analyses.cost) against measurement: estimated vs measured peak memory
over several analyses and sizes, on toy:ioi and a GPT-2-small shape (random weights, 50k
vocabulary). Measured: the process's peak RSS during the run minus its RSS before it (the model is
loaded before); "total" adds the RSS before to both, what the user sees. Goal: within 30 %.

    .venv/bin/python -m bench.estimate [--models toy:ioi,gpt2-small]
"""

from __future__ import annotations

import argparse

from bench.analyses import load_model, measure

TOY_IOI = [
    ("patch", {"task": "ioi", "n": 64, "site": "head_out"}),
    ("patch", {"task": "ioi", "n": 512, "site": "resid_pre"}),
    ("attrib", {"task": "ioi", "n": 256, "site": "resid_pre"}),
    ("attrib", {"task": "ioi", "n": 4096, "site": "resid_pre"}),
    ("eap", {"task": "ioi", "n": 256}),
    ("eap", {"task": "ioi", "n": 2048}),
    ("eval", {"task": "ioi", "n": 20000}),
    ("erasure-pr", {"task": "ioi", "n": 4000}),
    ("neuron-max-acts", {"task": "ioi", "n": 4000, "neuron": 0}),
    ("count-heads", {"n": 400}),
]
GPT2 = [
    ("logit-lens", {"prompt": "When Mary and John went to the store , John gave a drink to", "answer": " Mary"}),
    ("patch", {"task": "ioi", "n": 4, "site": "resid_pre", "positions": "-1"}),
    ("patch", {"task": "ioi", "n": 32, "site": "resid_pre", "positions": "-1"}),
    ("attrib", {"task": "ioi", "n": 4, "site": "resid_pre"}),
    ("attrib", {"task": "ioi", "n": 32, "site": "resid_pre"}),
    ("eap", {"task": "ioi", "n": 2}),
    ("eap", {"task": "ioi", "n": 16}),
    ("eval", {"task": "ioi", "n": 256}),
    ("erasure-pr", {"task": "ioi", "n": 64}),
]
CASES = {"toy:ioi": TOY_IOI, "gpt2-small": GPT2}


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--models", default=",".join(CASES))
    args = ap.parse_args()
    rows = []
    for model in args.models.split(","):
        lm = load_model(model)
        for name, params in CASES[model]:
            m = measure(lm, name, params, time_cap=None)
            rows.append((model, name, params, m))
            print(f"{model} {name} {params}: est {m['est_mb']:.0f} MB, grown {m['grown_mb']:.0f} MB", flush=True)
    print()
    print(f"{'model':10} {'analysis':16} {'size':>8} {'est MB':>8} {'meas MB':>8} {'ratio':>6}  "
          f"{'est total':>9} {'meas total':>10} {'ratio':>6}")
    for model, name, params, m in rows:
        size = params.get("n", params.get("by", "1"))
        total_est, total = m["rss_before_mb"] + m["est_mb"], m["rss_before_mb"] + m["grown_mb"]
        print(f"{model:10} {name:16} {size!s:>8} {m['est_mb']:8.0f} {m['grown_mb']:8.0f} "
              f"{m['est_mb'] / max(m['grown_mb'], 1):6.2f}  {total_est:9.0f} {total:10.0f} {total_est / total:6.2f}")


if __name__ == "__main__":
    main()
