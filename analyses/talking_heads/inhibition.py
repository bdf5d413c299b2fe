"""Data-side checks of communication channels (Merullo et al. 2024): does a sender component that
composes strongly with a receiver (weights) also steer the receiver's attention (data), and does
editing one component change list recall?

Inhibition score: the receiver's attention at the query position to chosen key positions
(minus its attention to ``vs`` positions), with and without one sender SVD component projected
out of the sender's output at the query position only (``LsHs:out:i=0@q``). Listed beside each
component's Q-composition CS_i with the receiver, so weight-based and data-based rankings can
be compared.

Edit search on list recall: every (head, component, scale) weight edit is scored on a search
sample (train split); the best one is then measured per list length on a held-out sample.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch
from torch import Tensor

from analyses.talking_heads.composition import component_scores, head_weights, ov_svd, receiver_factors
from analyses.edit_spec import Edit
from analyses.edits import edited
from analyses.errors import BadInput, Cancelled
from analyses.evaluate import evaluate
from analyses.labels import parse_head
from analyses.models.base import HookedModel
from analyses.results import Table


def _attention(model: HookedModel, ids: Tensor, layer: int, head: int, q: int, pos: list[int], vs: list[int]) -> float:
    name = f"blocks.{layer}.attn.hook_pattern"
    row = model.run(ids, capture=[name], stop_at_layer=layer + 1).cache[name][0, head, q].float()
    return float(row[pos].sum() - (row[vs].sum() if vs else 0.0))


def _positions(values: Sequence[int], n: int, what: str) -> list[int]:
    out = []
    for p in values:
        if not -n <= p < n:
            raise BadInput(f"{what}: position {p} is outside the prompt's {n} tokens")
        out.append(p % n)
    return out


def inhibition(model: HookedModel, ids: Tensor, sender: str, receiver: str, positions: Sequence[int],
               vs: Sequence[int] = (), query: int = -1, token_labels: list[str] | None = None) -> Table:
    """Per sender component i: the receiver's attention score D (to ``positions`` minus to ``vs``)
    at ``query``, clean and with component i projected out of the sender's output there; the
    change ``D_clean - D_i``, its share of D_clean, and the weight-based CS_i (Q-composition)."""
    shape = model.shape
    ls, hs, s_label = parse_head(sender, shape.n_layers, shape.n_heads)
    lr, hr, r_label = parse_head(receiver, shape.n_layers, shape.n_heads)
    if ls >= lr:
        raise BadInput(f"the receiver ({r_label}) must be in a later layer than the sender ({s_label})")
    n = ids.shape[1]
    q = _positions([query], n, "--query")[0]
    pos = _positions(positions, n, "--positions")
    if not pos:
        raise BadInput("--positions: name at least one key position")
    against = _positions(vs, n, "--vs")
    if any(p > q for p in pos + against):
        raise BadInput(f"a key position is after the query position {q}: causal attention never reads it")
    clean = _attention(model, ids, lr, hr, q, pos, against)
    w = head_weights(model, "tl")
    s, vh = ov_svd(w)
    cs = component_scores(vh[ls, hs], receiver_factors(w, "Q"))[:, lr, hr]
    ablated = []
    for i in range(shape.d_head):
        with edited(model, [Edit(ls, hs, "out", (i,), "=", 0.0, q)]):
            ablated.append(_attention(model, ids, lr, hr, q, pos, against))
    change = [clean - a for a in ablated]
    labels = [f"{s_label}.c{i}" for i in range(shape.d_head)]
    cols = {
        "change": change,
        "relative": [c / clean if clean else float("nan") for c in change],
        "ablated": ablated,
        "cs_q": cs.tolist(),
        "sigma": s[ls, hs].tolist(),
    }
    meta = {"sender": s_label, "receiver": r_label, "query": q, "positions": pos, "vs": against, "clean": clean,
            "rank_agreement": _spearman([abs(c) for c in change], cs.tolist())}
    if token_labels is not None:
        meta["prompt_tokens"] = token_labels
    return Table("inhibition", labels, cols, meta)


def _spearman(a: list[float], b: list[float]) -> float:
    """Rank correlation of two lists (ties broken by order): do the two rankings agree?"""
    ra = torch.tensor(a).argsort().argsort().float()
    rb = torch.tensor(b).argsort().argsort().float()
    ra, rb = ra - ra.mean(), rb - rb.mean()
    den = float(ra.norm() * rb.norm())
    return float(ra @ rb) / den if den else float("nan")


def recall_edit_search(model: HookedModel, tokenizer, n: int = 300, seed: int = 0, scales: Sequence[float] = (0.0, 2.0),
                       comps: int = 0, task: str = "recall",
                       progress: Callable[[int, int], None] | None = None,
                       should_stop: Callable[[], bool] | None = None) -> Table:
    """The weight edit (one head, one OV component, one scale) that most raises accuracy on a
    search sample, and its gain per variant (list length) on a held-out sample.

    ``comps``: how many leading components per head to try (0: all)."""
    from analyses.tasks import task_examples

    shape = model.shape
    if shape.n_heads == 0:
        raise BadInput(f"{shape.family} has no attention heads to edit")
    if not scales:
        raise BadInput("--scales: give at least one scale")
    k = shape.d_head if comps <= 0 else min(comps, shape.d_head)
    search = task_examples(task, n, seed, "train")
    held = task_examples(task, n, seed, "test")
    base = evaluate(model, tokenizer, task, search).meta["accuracy"]
    candidates = [Edit(l, h, "ov", (i,), "=", float(a)) for l in range(shape.n_layers) for h in range(shape.n_heads)
                  for i in range(k) for a in scales]
    scored = []
    for j, edit in enumerate(candidates):
        if should_stop is not None and should_stop():
            raise Cancelled("edit search cancelled")
        with edited(model, [edit]):
            scored.append((evaluate(model, tokenizer, task, search).meta["accuracy"], edit.text))
        if progress is not None:
            progress(j + 1, len(candidates) + 2)
    scored.sort(key=lambda t: -t[0])
    best = scored[0][1]
    before = evaluate(model, tokenizer, task, held)
    with edited(model, [best]):
        after = evaluate(model, tokenizer, task, held)
    labels = before.labels
    acc0, acc1 = before.columns["accuracy"], after.columns["accuracy"]
    cols = {"gain": [b - a for a, b in zip(acc0, acc1)], "before": acc0, "after": acc1, "n": before.columns["n"]}
    meta = {"task": task, "edit": best, "edits_tried": len(candidates), "search_accuracy_before": base,
            "search_accuracy_after": scored[0][0], "top_edits": [{"edit": e, "search_accuracy": a} for a, e in scored[:10]],
            "held_out_gain": acc1[-1] - acc0[-1]}
    return Table("recall-edit", labels, cols, meta)


def inhibition_task(model: HookedModel, tokenizer, examples, sender: str, receiver: str, task: str = "") -> Table:
    """The inhibition score over a task's examples (Talking Heads Fig. 2, inferred): per example,
    ``D = α_r(END→answer) − α_r(END→distractor)`` with each token's first position in the prompt
    (IO and S1 on IOI), END the last prompt token. Per sender component i, ``D_i`` with i projected
    out of the sender's output at END; ``I_i = (mean D − mean D_i) / mean D``."""
    from analyses.tokens import encode_prompt, resolve_token

    shape = model.shape
    ls, hs, s_label = parse_head(sender, shape.n_layers, shape.n_heads)
    lr, hr, r_label = parse_head(receiver, shape.n_layers, shape.n_heads)
    if ls >= lr:
        raise BadInput(f"the receiver ({r_label}) must be in a later layer than the sender ({s_label})")
    groups: dict[int, list[tuple[list[int], int, int]]] = {}
    for e in examples:
        ids = encode_prompt(tokenizer, e.prompt, n_ctx=shape.n_ctx)
        a, d = resolve_token(tokenizer, e.answer), resolve_token(tokenizer, e.distractor)
        if a in ids and d in ids:
            groups.setdefault(len(ids), []).append((ids, ids.index(a), ids.index(d)))
    used = sum(len(g) for g in groups.values())
    if used == 0:
        raise BadInput("no example has both its answer and its distractor in the prompt (IOI-style tasks do)")
    name = f"blocks.{lr}.attn.hook_pattern"

    def mean_d(edits: list[Edit]) -> float:
        total = 0.0
        with edited(model, edits):
            for rows in groups.values():
                ids = torch.tensor([r[0] for r in rows])
                pat = model.run(ids, capture=[name], stop_at_layer=lr + 1).cache[name][:, hr, -1].float()
                idx = torch.arange(len(rows))
                total += float((pat[idx, [r[1] for r in rows]] - pat[idx, [r[2] for r in rows]]).sum())
        return total / used

    clean = mean_d([])
    ablated = [mean_d([Edit(ls, hs, "out", (i,), "=", 0.0, -1)]) for i in range(shape.d_head)]
    w = head_weights(model, "tl")
    s, vh = ov_svd(w)
    cs = component_scores(vh[ls, hs], receiver_factors(w, "Q"))[:, lr, hr]
    change = [clean - a for a in ablated]
    cols = {"score": [c / clean if clean else float("nan") for c in change], "change": change, "ablated": ablated,
            "cs_q": cs.tolist(), "sigma": s[ls, hs].tolist()}
    meta = {"task": task, "n": used, "sender": s_label, "receiver": r_label, "clean": clean,
            "rank_agreement": _spearman([abs(c) for c in change], cs.tolist())}
    return Table("inhibition-task", [f"{s_label}.c{i}" for i in range(shape.d_head)], cols, meta)
