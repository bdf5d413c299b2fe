"""Every result the analyses return, as they return it on a real (tiny) model, comes back from a
session file exactly: the numbers, labels, text columns and nested metadata."""

from __future__ import annotations

import json

import pytest
from conftest import CORRUPT, PROMPT

from analyses.registry import run_analysis
from sessions.store import Session

PAIR = {"clean": PROMPT, "corrupt": CORRUPT, "answer": " Mary", "distractor": " Alice"}
REQUESTS = [
    ("dla", {"prompt": PROMPT, "answer": " Mary", "distractor": " John", "by": "layer"}),
    ("dla", {"prompt": PROMPT, "answer": " Mary", "by": "head"}),
    ("dla", {"prompt": PROMPT, "answer": " Mary", "by": "neuron"}),
    ("logit-lens", {"prompt": PROMPT, "answer": " Mary"}),
    ("patch", {**PAIR, "site": "head_out"}),
    ("patch", {**PAIR, "site": "resid_pre", "all_pos": True}),
    ("attrib", {**PAIR, "site": "head_out"}),
    ("eap", {**PAIR, "top": 5}),
    ("eap", {**PAIR, "positional": True}),
    ("path-patch", {**PAIR, "senders": "input", "receivers": "logits"}),
]


@pytest.mark.parametrize("family", ["gpt2", "mamba"])
def test_every_analysis_result_round_trips(family, loaded, tmp_path):
    lm = loaded(family)
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text(json.dumps(PAIR) + "\n")
    requests = [(a, p) for a, p in REQUESTS if not (family == "mamba" and p.get("by") in ("head", "neuron"))]
    requests = [(a, {**p, "site": "out_proj"} if family == "mamba" and p.get("site") == "head_out" else p)
                for a, p in requests]
    requests.append(("eval", {"pairs": str(pairs)}))
    results = [(a, p, run_analysis(lm, a, **p)) for a, p in requests]
    path = tmp_path / "s.wbs"
    with Session.create(path, lm.info) as s:
        for analysis, params, result in results:
            s.append_run(analysis, params, result)
    with Session.open(path) as s:
        runs = s.runs()
    assert [(r.analysis, r.params) for r in runs] == [(a, p) for a, p, _ in results]
    for run, (_, _, result) in zip(runs, results):
        assert type(run.result) is type(result)
        assert json.dumps(run.result.to_json(), sort_keys=True) == json.dumps(result.to_json(), sort_keys=True)
