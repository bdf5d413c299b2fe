"""Paper 2's contrast (issue 20 part 2, issue 24): next-token neurons against random neurons of the
same layer through the same pipeline, the samples behind neuron-ablation's KS test, task texts
without their appended answer, and the trained several-marker toy ``toy:lookup-multi``."""

from __future__ import annotations

import json

from analyses.corpus import corpus_texts
from analyses.tasks import task_examples
from workbench.cli import main


def test_task_texts_for_neurons_hold_no_appended_answer(capsys):
    """Seen: 4 of 17 rules on toy:lookup read "contains 'yes'": the answer appended to each task
    prompt was read as context. The neurons' texts are the prompts alone; other corpus readers
    (erasure) keep the answers."""
    prompts = [e.prompt for e in task_examples("lookup", 5, 0, split="test")]
    assert list(corpus_texts(task="lookup", n=5, answers=False)) == prompts
    assert all(t.endswith((" yes", " no")) for t in corpus_texts(task="lookup", n=5))
    assert main(["run", "neuron-max-acts", "--model", "toy:lookup", "--layer", "1", "--neuron", "11", "--task",
                 "lookup", "--n", "80", "--top", "80", "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 80
    assert not [r["tokens"] for r in rows if {"yes", "no"} & {t.strip() for t in r["tokens"]}]


def test_neuron_ablation_json_gives_the_samples_its_ks_test_compared(capsys):
    """Each row's KS D and p are scipy's ks_2samp of the two Δp samples the JSON carries."""
    from scipy import stats

    assert main(["run", "neuron-ablation", "--model", "toy:lookup", "--layer", "1", "--neuron", "11", "--task",
                 "lookup", "--n", "60", "--top", "60", "--heads", "L0H5,L0H1", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out["samples"]) == {"L0H5", "L0H1", "all"}
    for row in out["rows"]:
        sample = out["samples"][row["label"]]
        assert (len(sample["active"]), len(sample["inactive"])) == (row["n_active"], row["n_inactive"])
        if not (sample["active"] and sample["inactive"]):  # L0H1 is never active: no test, null
            assert row["ks_d"] is None and row["ks_p"] is None
            continue
        ref = stats.ks_2samp(sample["active"], sample["inactive"])
        assert row["ks_d"] == ref.statistic and row["ks_p"] == ref.pvalue
    assert out["samples"]["all"]["active"] == out["samples"]["L0H5"]["active"] + out["samples"]["L0H1"]["active"]


def test_summary_is_mean_population_sd_skew_and_skewtest():
    import math

    from scipy import stats

    from analyses.neurons.baseline import summary

    xs = [0.5, 0.6, 0.62, 0.7, 0.75, 0.9, 1.0, 1.0, 0.55]
    s = summary(xs + [float("nan")])  # NaN (held-out labels all one class) is skipped, as the paper does
    mean = sum(xs) / len(xs)
    assert s["mean"] == mean and math.isclose(s["sd"], math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs)))
    assert s["skew"] == stats.skew(xs) and s["skewtest_p"] == stats.skewtest(xs).pvalue
    assert math.isnan(summary(xs[:7])["skewtest_p"]) and math.isnan(summary([])["mean"])


def test_the_baseline_on_toy_lookup_groups_its_pairs(capsys):
    """Two disjoint, seeded groups; each row's figures are those of its pair records."""
    argv = ["run", "neuron-baseline", "--model", "toy:lookup", "--task", "lookup", "--n", "40", "--top", "40",
            "--k", "3", "--json"]
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    nxt, rnd = out["next_token_neurons"], out["random_neurons"]
    assert len(nxt) == len(rnd) == 3 and not set(nxt) & set(rnd) and 11 in nxt  # L1N11 writes ' yes'
    assert main(argv) == 0 and json.loads(capsys.readouterr().out)["random_neurons"] == rnd  # seeded
    rows = {r["label"]: r for r in out["rows"]}
    for group, row in rows.items():
        pairs = [p for p in out["pair_records"] if p["group"] == group]
        assert row["pairs"] == len(pairs)
        if pairs:
            scores = [p["balanced_accuracy"] for p in pairs]
            assert abs(row["balanced_accuracy"] - sum(scores) / len(scores)) < 1e-12
            assert all(abs(p["effect"] - (p["dp_active"] - p["dp_inactive"])) < 1e-12 for p in pairs)
    assert rows["next-token"]["balanced_accuracy"] == 1.0  # 'contains school', now that no text holds 'yes'


def test_baseline_nonsense_is_refused_before_the_model_loads(capsys):
    assert main(["run", "neuron-baseline", "--model", "toy:nope", "--task", "lookup", "--k", "0"]) == 2
    assert "--k must be at least 1" in capsys.readouterr().err
    assert main(["run", "neuron-baseline", "--model", "toy:nope"]) == 2
    assert "--corpus FILE" in capsys.readouterr().err
