"""When is a head active? n-gram rules (and optionally an LLM's explanation), scored by balanced
accuracy on held-out texts against shuffled labels."""

from __future__ import annotations

import math
import random
from collections.abc import Sequence
from dataclasses import dataclass

from analyses.models.base import HookedModel
from analyses.neurons.congruence import predicted_token
from analyses.neurons.heads import active_heads, head_labels, prompts_attribution, selected_heads
from analyses.neurons.max_acts import Trimmed
from analyses.results import Table


def balanced_accuracy(pred: Sequence[bool], truth: Sequence[bool]) -> float:
    """(TPR + TNR) / 2; NaN when ``truth`` is all one class (the paper skips such sets)."""
    pos = sum(truth)
    neg = len(truth) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    tp = sum(p and t for p, t in zip(pred, truth))
    tn = sum((not p) and (not t) for p, t in zip(pred, truth))
    return (tp / pos + tn / neg) / 2


def ngrams(tokens: Sequence[str], max_n: int = 2) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Rule:
    """"active iff the prompt contains (``present``) / lacks the n-gram ``gram``"."""

    gram: tuple[str, ...]
    present: bool = True

    def __call__(self, tokens: Sequence[str]) -> bool:
        g = len(self.gram)
        found = any(tuple(tokens[i : i + g]) == self.gram for i in range(len(tokens) - g + 1))
        return found == self.present

    def text(self) -> str:
        return ("contains " if self.present else "lacks ") + repr("".join(self.gram))


def fit_rule(prompts: list[list[str]], labels: list[bool], max_n: int = 2) -> tuple[Rule | None, float]:
    """The n-gram rule with the best balanced accuracy on (prompts, labels); ties go to the
    shorter n-gram, then the earlier-seen one. (None, NaN) when the labels are all one class."""
    if all(labels) or not any(labels):
        return None, float("nan")
    seen: dict[tuple[str, ...], list[bool]] = {}
    for i, toks in enumerate(prompts):
        for g in ngrams(toks, max_n):
            seen.setdefault(g, [False] * len(prompts))[i] = True
    best, best_score = None, -1.0
    for g in sorted(seen, key=len):
        has = seen[g]
        for present in (True, False):
            score = balanced_accuracy([h == present for h in has], labels)
            if score > best_score:
                best, best_score = Rule(g, present), score
    return best, best_score


def shuffled_baseline(pred: Sequence[bool], truth: Sequence[bool], n: int = 200, seed: int = 0) -> tuple[float, float]:
    """(mean balanced accuracy of ``pred`` against shuffled ``truth``, share of shuffles scoring at
    least the true score: a permutation p-value)."""
    real = balanced_accuracy(pred, truth)
    if math.isnan(real):
        return float("nan"), float("nan")
    rng = random.Random(seed)
    labels = list(truth)
    scores = []
    for _ in range(n):
        rng.shuffle(labels)
        scores.append(balanced_accuracy(pred, labels))
    return sum(scores) / n, (1 + sum(s >= real for s in scores)) / (n + 1)


def split_indices(n: int, test_share: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded train/test split of range(n)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, round(n * test_share)) if n > 1 else 0
    return sorted(order[k:]), sorted(order[:k])


def explain_heads(model: HookedModel, tokenizer, prompts: list[Trimmed], layer: int, neuron: int,
                  test_share: float = 0.5, seed: int = 0, max_n: int = 2, llm=None, low: float = 0.25,
                  high: float = 0.75) -> Table:
    """For each head active on ``low``..``high`` of the prompts: the n-gram rule that best
    separates its active from its inactive train prompts, scored by balanced accuracy on the
    held-out ones against shuffled labels; with ``llm`` (an ``analyses.llm.Explainer``), the
    model's explanation and its classification score too."""
    from analyses.tokens import token_strings

    attr = prompts_attribution(model, [p.ids for p in prompts], layer, neuron)
    active = active_heads(attr)
    rate = active.float().mean(0)
    labels = head_labels(model, layer)
    texts = [token_strings(tokenizer, p.ids) for p in prompts]
    train, test = split_indices(len(prompts), test_share, seed)
    rows: dict[str, list] = {k: [] for k in ("balanced_accuracy", "shuffled_baseline", "p_shuffled", "explanation",
                                             "train_accuracy", "active_rate", "n_train", "n_test", "test_active")}
    if llm is not None:
        rows.update(llm_balanced_accuracy=[], llm_explanation=[])
    token = tokenizer.decode([predicted_token(model, layer, neuron)], clean_up_tokenization_spaces=False)
    out_labels = []
    text = [tokenizer.decode(p.ids, skip_special_tokens=True) for p in prompts] if llm is not None else []
    for h in selected_heads(rate, labels, low, high):
        label = labels[h]
        y = active[:, h].tolist()
        rule, train_score = fit_rule([texts[i] for i in train], [y[i] for i in train], max_n)
        truth = [y[i] for i in test]
        pred = [rule(texts[i]) for i in test] if rule is not None else [False] * len(test)
        score = balanced_accuracy(pred, truth)
        base, p = shuffled_baseline(pred, truth, seed=seed)
        out_labels.append(label)
        for k, v in (("balanced_accuracy", score), ("shuffled_baseline", base), ("p_shuffled", p),
                     ("explanation", rule.text() if rule else "(train labels all one class)"),
                     ("train_accuracy", train_score), ("active_rate", float(rate[h])), ("n_train", len(train)),
                     ("n_test", len(test)), ("test_active", sum(truth))):
            rows[k].append(v)
        if llm is not None:
            explanation = llm.explain(token, [text[i] for i in train if y[i]], [text[i] for i in train if not y[i]])
            llm_pred = [llm.classify(explanation, text[i]) for i in test]
            rows["llm_explanation"].append(explanation)
            rows["llm_balanced_accuracy"].append(balanced_accuracy(llm_pred, truth))
    meta = {"layer": layer, "neuron": neuron, "token": token, "n_prompts": len(prompts), "test_share": test_share,
            "max_n": max_n, "llm": llm.describe() if llm is not None else None}
    return Table("neuron-explain", out_labels, rows, meta)
