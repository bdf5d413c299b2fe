"""Paper 2's control: next-token neurons against random neurons of the same layer, through the
same pipeline (docs/neurons.md, "Against random neurons")."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare
from analyses.registry._facts import num, rate
from analyses.registry.corpus import CORPUS
from analyses.registry.neurons import PROMPTS, _check


def run_baseline(lm, layer, k, random_seed, corpus, task, n, seed, batch, prepend_bos, top, ratio, max_len,
                 test_share, max_n, progress=None, should_stop=None):
    from analyses.corpus import PromptSet
    from analyses.neurons.baseline import baseline_table

    prompts = PromptSet(corpus, task, n, seed, batch, prepend_bos, answers=False)
    return baseline_table(lm.hooked, lm.tokenizer, layer, k, random_seed, prompts, top, ratio, max_len, test_share,
                          max_n, progress, should_stop)


def baseline_facts(table: Any) -> list[str]:
    """Each group's mean ± sd balanced accuracy and ablation effect, and the margin between them."""
    c, m = table.columns, table.meta
    facts = [f"L{m.get('layer')}: next-token minus random neurons' balanced accuracy {num(m.get('margin'))} "
             f"(KS between the groups p {num(m.get('groups_ks_p'), kind='p')})"]
    for i, group in enumerate(table.labels):
        facts.append(f"{group}: balanced accuracy {rate(c['balanced_accuracy'][i])} ± {rate(c['ba_sd'][i])} over "
                     f"{num(c['pairs'][i], kind='count')} pairs ({num(c['neurons_with_heads'][i], kind='count')} of "
                     f"{num(c['neurons'][i], kind='count')} neurons), ablation Δp {num(c['effect'][i])} ± "
                     f"{num(c['effect_sd'][i], sign=False)}")
    return facts


declare(Analysis(
    "neuron-baseline", "neurons: next-token vs random", "the pipeline on a layer's k most congruent neurons and "
    "on k random ones: balanced accuracy and ablation effect, mean ± sd, skewtest", (
        Param("layer", "int", "the layer (negative counts from the end)", default=-1),
        Param("k", "int", "neurons per group (the paper: 20)", default=8, minimum=1),
        Param("random_seed", "int", "seed of the random neurons' draw", default=0, minimum=0, label="random seed"),
        *CORPUS, *PROMPTS,
        Param("test_share", "float", "share of each neuron's texts held out for scoring", default=0.5, minimum=0.05,
              label="test share"),
        Param("max_n", "int", "longest n-gram the rule explainer tries", default=2, minimum=1, label="max n"),
    ), run_baseline, "table", "model", cancellable=True, check=_check, key=("layer", "k", "random_seed"),
    excludes=("mamba",), tasks=("lookup", "lookup-multi"), headline=baseline_facts,
    doc="Pairs (neuron, head active on 25-75 % of its texts); per group the mean, population sd, skew and "
        "scipy skewtest of the held-out balanced accuracies, the mean Δp(active) - Δp(inactive) and the KS test "
        "across pairs between Δp on active and inactive texts (the paper's). Random neurons exclude the next-token "
        "ones.",
))
