"""The paper's contrast: next-token neurons against random neurons of the same layer, through the
same pipeline (top texts, trimming, head attribution, rule explanations, head ablation). Per
(neuron, selected head) pair: the explanation's held-out balanced accuracy and the ablation
effect; per group: mean, population sd, skew and ``scipy.stats.skewtest`` of the balanced
accuracies (the paper's report, E2.6), and the KS test between the pairs' mean Δp on active and
inactive texts (the paper's E2.7, across pairs)."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence

from analyses.corpus import CorpusLoop, Progress, PromptSet, Stop
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.neurons.ablation import ablation_table, ks_2samp
from analyses.neurons.congruence import check_neuron, neuron_congruence, predicted_token, word_token_mask
from analyses.neurons.explain import explain_heads
from analyses.neurons.max_acts import Trimmed, top_documents_many, trim_documents
from analyses.results import Table

GROUPS = ("next-token", "random")


def pick_neurons(model: HookedModel, tokenizer, layer: int, k: int, seed: int) -> tuple[list[int], list[int]]:
    """(the layer's ``k`` most congruent neurons over word tokens, ``k`` neurons drawn uniformly
    (seeded) from the rest of the layer): two disjoint samples."""
    best, _ = neuron_congruence(model, layer, word_token_mask(tokenizer, model.shape.d_vocab))
    top = best.argsort(descending=True)[:k].tolist()
    rest = [n for n in range(model.shape.d_mlp) if n not in set(top)]
    if not rest:
        raise BadInput(f"--k {k}: the layer has {model.shape.d_mlp} neurons, none left to draw at random")
    return top, sorted(random.Random(seed).sample(rest, min(k, len(rest))))


def neuron_pairs(model: HookedModel, tokenizer, prompts: list[Trimmed], layer: int, neuron: int,
                 test_share: float, seed: int, max_n: int) -> list[dict]:
    """One record per head selected for the neuron (none when no head is active on 25-75 % of its
    texts: the paper skips those): balanced accuracy, explanation, Δp on active / inactive texts."""
    try:
        explained = explain_heads(model, tokenizer, prompts, layer, neuron, test_share, seed, max_n)
    except BadInput:
        return []
    ablated = ablation_table(model, prompts, layer, neuron, predicted_token(model, layer, neuron))
    e, a = explained.columns, ablated.columns
    return [{"neuron": neuron, "head": head, "token": explained.meta["token"],
             "balanced_accuracy": e["balanced_accuracy"][i], "explanation": e["explanation"][i],
             "dp_active": a["dp_active"][i], "dp_inactive": a["dp_inactive"][i],
             "effect": a["dp_active"][i] - a["dp_inactive"][i]}
            for i, head in enumerate(explained.labels)]


def summary(xs: Sequence[float]) -> dict[str, float]:
    """Mean, population sd, skew (scipy's, biased) and skewtest p (NaN below the 8 values it needs)."""
    from scipy import stats

    xs = [x for x in xs if not math.isnan(x)]
    if not xs:
        return {"mean": math.nan, "sd": math.nan, "skew": math.nan, "skewtest_p": math.nan}
    mean = sum(xs) / len(xs)
    sd = math.sqrt(sum((x - mean) ** 2 for x in xs) / len(xs))
    skew = float(stats.skew(xs)) if len(xs) > 2 and sd > 0 else math.nan
    p = float(stats.skewtest(xs).pvalue) if len(xs) >= 8 and sd > 0 else math.nan
    return {"mean": mean, "sd": sd, "skew": skew, "skewtest_p": p}


def baseline_table(model: HookedModel, tokenizer, layer: int, k: int, random_seed: int, prompts: PromptSet,
                   top: int = 40, ratio: float = 0.8, max_len: int | None = 100, test_share: float = 0.5,
                   max_n: int = 2, progress: Progress = None, should_stop: Stop = None) -> Table:
    """Rows ``next-token`` and ``random``: the pipeline's figures over each group's pairs."""
    layer, _ = check_neuron(model, layer, 0)
    chosen = dict(zip(GROUPS, pick_neurons(model, tokenizer, layer, k, random_seed)))
    neurons = chosen["next-token"] + chosen["random"]
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    docs, read, stopped = top_documents_many(model, loop, layer, neurons, top)
    pairs: list[dict] = []
    done = 0
    for group, members in chosen.items():
        for n in members:
            if should_stop is not None and should_stop():
                stopped = True
                break
            trimmed, _ = trim_documents(model, docs[n], layer, n, ratio, max_len, tokenizer.bos_token_id)
            pairs += [{"group": group, **p} for p in neuron_pairs(model, tokenizer, trimmed, layer, n,
                                                                   test_share, prompts.seed, max_n)]
            done += 1
            if progress is not None:
                progress(done, len(neurons))
    cols: dict[str, list] = {c: [] for c in (
        "balanced_accuracy", "ba_sd", "ba_skew", "skewtest_p", "effect", "effect_sd", "dp_active", "dp_inactive",
        "ks_d", "ks_p", "pairs", "neurons", "neurons_with_heads")}
    for group in GROUPS:
        mine = [p for p in pairs if p["group"] == group]
        ba, eff = summary([p["balanced_accuracy"] for p in mine]), summary([p["effect"] for p in mine])
        act, inact = [p["dp_active"] for p in mine], [p["dp_inactive"] for p in mine]
        d, p_ks = ks_2samp(act, inact)
        for c, v in (("balanced_accuracy", ba["mean"]), ("ba_sd", ba["sd"]), ("ba_skew", ba["skew"]),
                     ("skewtest_p", ba["skewtest_p"]), ("effect", eff["mean"]), ("effect_sd", eff["sd"]),
                     ("dp_active", summary(act)["mean"]), ("dp_inactive", summary(inact)["mean"]), ("ks_d", d),
                     ("ks_p", p_ks), ("pairs", len(mine)), ("neurons", len(chosen[group])),
                     ("neurons_with_heads", len({p["neuron"] for p in mine}))):
            cols[c].append(v)
    margin = cols["balanced_accuracy"][0] - cols["balanced_accuracy"][1]
    between = ks_2samp(*[[p["balanced_accuracy"] for p in pairs if p["group"] == g
                          and not math.isnan(p["balanced_accuracy"])] for g in GROUPS])
    meta = {"layer": layer, "k": k, "random_seed": random_seed, "next_token_neurons": chosen["next-token"],
            "random_neurons": chosen["random"], "margin": margin, "groups_ks_d": between[0],
            "groups_ks_p": between[1], "documents": read, "stopped": stopped, "source": prompts.source(),
            "pair_records": pairs}
    return Table("neuron-baseline", list(GROUPS), cols, meta)
