"""Task accuracy: does the model put the answer above the distractor, overall and per variant?"""

from __future__ import annotations

from collections import defaultdict

from analyses.models.base import HookedModel
from analyses.results import Table
from analyses.tasks import Example
from analyses.tokens import encode_prompt, pad_batch, padding_id, resolve_token


def evaluate(model: HookedModel, tokenizer, task: str, examples: list[Example], batch: int = 128) -> Table:
    """Accuracy (answer logit > distractor logit at the last prompt token) and mean logit
    difference, per variant and overall; with end-of-sequence targets, also whether the model
    then predicts the target after the answer."""
    pad = padding_id(tokenizer)
    diffs: list[float] = []
    target_ok: list[bool] = []
    for start in range(0, len(examples), batch):
        chunk = examples[start : start + batch]
        prompts = [encode_prompt(tokenizer, e.prompt, n_ctx=model.shape.n_ctx) for e in chunk]
        answers = [resolve_token(tokenizer, e.answer) for e in chunk]
        seqs = [p + [a] for p, a in zip(prompts, answers)]
        ids, mask = pad_batch(seqs, pad)
        logits = model.run(ids, attention_mask=mask).logits.float().cpu()
        for i, (e, p) in enumerate(zip(chunk, prompts)):
            last = logits[i, len(p) - 1]
            diffs.append(float(last[answers[i]] - last[resolve_token(tokenizer, e.distractor)]))
            if e.target is not None:
                target_ok.append(int(logits[i, len(p)].argmax()) == resolve_token(tokenizer, e.target))
    groups: dict[str, list[int]] = defaultdict(list)
    for i, e in enumerate(examples):
        groups[e.variant].append(i)
    labels = sorted(groups, key=_variant_order) + ["all"]
    groups["all"] = list(range(len(examples)))
    rows = {
        "accuracy": [sum(diffs[i] > 0 for i in groups[v]) / len(groups[v]) for v in labels],
        "mean_logit_diff": [sum(diffs[i] for i in groups[v]) / len(groups[v]) for v in labels],
        "n": [len(groups[v]) for v in labels],
    }
    meta = {"task": task, "n": len(examples), "accuracy": rows["accuracy"][-1], "mean_logit_diff": rows["mean_logit_diff"][-1]}
    if target_ok:
        meta["target_accuracy"] = sum(target_ok) / len(target_ok)
    meta["by_variant"] = {v: {k: rows[k][j] for k in rows} for j, v in enumerate(labels[:-1])}
    return Table("eval", labels, rows, meta)


def _variant_order(v: str) -> tuple:
    """len2 < len10 numerically; other names alphabetically."""
    digits = "".join(c for c in v if c.isdigit())
    return (v.rstrip("0123456789"), int(digits) if v[-1:].isdigit() else 0, v)

