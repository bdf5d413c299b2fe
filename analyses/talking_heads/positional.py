"""The positional subspace of inhibition components (Merullo et al. 2024, "Talking Heads"; spec
E3.4, E3.6a; definitions in docs/composition.md).

The write directions of the sender components that compose most with a receiver head's queries
(largest CS_i, Q-composition) span a small subspace of the residual stream. At the receiver's
query position (END, the last prompt token) the stream's projection onto it is reduced by PCA to
``dims`` coordinates; each prompt is labelled by the list position k of its answer (the rank of the
answer's first occurrence among the first occurrences of the sample's candidate tokens: every
answer and distractor of the sample, i.e. the names on IOI and the items on list tasks).

- ``positional_subspace``: centroid c_k per k, the spacing of consecutive centroids, how much of
  the variance the labels explain, and the spacing per list length ("crowding").
- ``centroid_traversal``: END's projection replaced by c_k (``x <- x - P Pᵀ x + P c_k``), for every
  k: the receiver's attention over list positions.
- ``centroid_replace``: each held-out prompt's projection replaced by the centroid of its own
  answer's position (and, as a control, of the next position): accuracy per variant.

Centroids and PCA are fitted on the task's train split; traversal and replacement run on the test
split.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.talking_heads.composition import component_scores, head_weights, ov_svd, receiver_factors
from analyses.errors import BadInput
from analyses.labels import parse_head
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.results import Grid, Table


@dataclass(frozen=True)
class Prompt:
    """One prompt, with the positions of its list (first occurrences of candidate tokens)."""

    ids: tuple[int, ...]
    items: tuple[int, ...]  # list positions, in order
    k: int  # the answer's index among ``items``
    answer: int
    distractor: int
    variant: str


@dataclass(frozen=True)
class Subspace:
    """P [D, dims] with orthonormal columns, and the centroids c_k [K, dims] of ``Pᵀ x``."""

    P: Tensor
    centroids: Tensor
    counts: list[int]
    components: list[str]
    explained: list[float]


def list_prompts(model: HookedModel, tokenizer, examples) -> list[Prompt]:
    """The sample's prompts whose answer occurs in the prompt, with their list positions."""
    from analyses.tokens import encode_prompt, resolve_token

    resolved = [(e, resolve_token(tokenizer, e.answer), resolve_token(tokenizer, e.distractor)) for e in examples]
    candidates = {a for _, a, _ in resolved} | {d for _, _, d in resolved}
    out = []
    for e, a, d in resolved:
        ids = encode_prompt(tokenizer, e.prompt, n_ctx=model.shape.n_ctx)
        seen: dict[int, int] = {}
        for p, t in enumerate(ids[:-1]):
            if t in candidates and t not in seen:
                seen[t] = p
        if a in seen:
            items = tuple(seen.values())
            out.append(Prompt(tuple(ids), items, items.index(seen[a]), a, d, e.variant))
    if not out:
        raise BadInput("no prompt of the sample has its answer in the prompt (IOI and list tasks do)")
    return out


def _groups(prompts: Sequence[Prompt]) -> dict[int, list[int]]:
    """Prompt indices by token length: each group runs unpadded, END = -1."""
    groups: dict[int, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(len(p.ids), []).append(i)
    return groups


def _heads(model: HookedModel, senders: Sequence[str], receiver: str) -> tuple[list[tuple[int, int, str]], int, int]:
    shape = model.shape
    lr, hr, r_label = parse_head(receiver, shape.n_layers, shape.n_heads)
    heads = [parse_head(s, shape.n_layers, shape.n_heads) for s in senders]
    if not heads:
        raise BadInput("--senders: name at least one sender head")
    late = [h[2] for h in heads if h[0] >= lr]
    if late:
        raise BadInput(f"senders {', '.join(late)} are not in a layer before the receiver {r_label}")
    return heads, lr, hr


def sender_directions(model: HookedModel, senders: Sequence[str], receiver: str, comps: int) -> tuple[Tensor, list[str]]:
    """The unit write directions [m, D] of each sender's ``comps`` components with the largest
    Q-composition CS_i with the receiver, and their labels (``L0H1.c3``)."""
    heads, lr, hr = _heads(model, senders, receiver)
    w = head_weights(model, "tl")
    _, vh = ov_svd(w)
    q = receiver_factors(w, "Q")
    rows, labels = [], []
    for ls, hs, label in heads:
        cs = component_scores(vh[ls, hs], q)[:, lr, hr]
        for i in cs.argsort(descending=True)[:comps].tolist():
            rows.append(vh[ls, hs, i])
            labels.append(f"{label}.c{i}")
    return torch.stack(rows), labels


def end_resid(model: HookedModel, prompts: Sequence[Prompt], layer: int,
              interventions_for: Callable[[list[int]], list[Intervention]] | None = None) -> Tensor:
    """``blocks.{layer}.hook_resid_pre`` at each prompt's last token [n, D] (fp32, CPU);
    ``interventions_for(indices)`` gives the edits of the run over those prompts."""
    name = f"blocks.{layer}.hook_resid_pre"
    out = torch.zeros(len(prompts), model.shape.d_model)
    for idx in _groups(prompts).values():
        ids = torch.tensor([prompts[i].ids for i in idx])
        edits = interventions_for(idx) if interventions_for is not None else []
        cache = model.run(ids, capture=[name], interventions=edits, stop_at_layer=layer + 1).cache
        out[idx] = cache[name][:, -1].float().cpu()
    return out


def fit_subspace(x: Tensor, directions: Tensor, labels: Sequence[int], dims: int, components: list[str]) -> Subspace:
    """PCA of ``x``'s projection onto span(directions) -> P [D, dims]; c_k = mean of Pᵀx over label k."""
    basis = torch.linalg.qr(directions.T.double())[0]  # [D, m] orthonormal
    y = x.double() @ basis
    y_centred = y - y.mean(0)
    _, s, vt = torch.linalg.svd(y_centred, full_matrices=False)
    dims = min(dims, basis.shape[1])
    P = basis @ vt[:dims].T
    var = s.pow(2)
    explained = (var[:dims] / var.sum()).tolist() if float(var.sum()) > 0 else [float("nan")] * dims
    z = x.double() @ P
    n_labels = max(labels) + 1
    lab = torch.tensor(list(labels))
    counts = [int((lab == k).sum()) for k in range(n_labels)]
    centroids = torch.stack([z[lab == k].mean(0) if counts[k] else torch.full((dims,), float("nan"), dtype=z.dtype)
                             for k in range(n_labels)])
    return Subspace(P.float(), centroids.float(), counts, components, explained)


def replace_projection(x: Tensor, P: Tensor, c: Tensor) -> Tensor:
    """``x - P Pᵀ x + P c``: the part of x in span(P) set to coordinates c, the rest unchanged."""
    P = P.to(x.device, x.dtype)
    return x - (x @ P) @ P.T + c.to(x.device, x.dtype) @ P.T


def _replacement(layer: int, P: Tensor, coords: Tensor) -> Intervention:
    """At the last position of every row: the projection replaced by that row's ``coords``."""
    def fn(resid: Tensor) -> Tensor:
        out = resid.clone()
        out[:, -1] = replace_projection(resid[:, -1], P, coords)
        return out
    return Intervention(f"blocks.{layer}.hook_resid_pre", "fn", fn=fn, label="centroid replacement")


def fitted(model: HookedModel, tokenizer, fit_examples, senders: Sequence[str], receiver: str, comps: int,
           dims: int) -> tuple[Subspace, list[Prompt], Tensor]:
    prompts = list_prompts(model, tokenizer, fit_examples)
    directions, components = sender_directions(model, senders, receiver, comps)
    _, lr, _ = _heads(model, senders, receiver)
    x = end_resid(model, prompts, lr)
    return fit_subspace(x, directions, [p.k for p in prompts], dims, components), prompts, x


def positional_subspace(model: HookedModel, tokenizer, examples, senders: Sequence[str], receiver: str,
                        comps: int = 1, dims: int = 3, task: str = "") -> Table:
    """Per answer position k: its number of prompts, centroid coordinates, the distance from
    c_{k-1} (``step``) and the RMS distance of its prompts to c_k (``spread``)."""
    sub, prompts, x = fitted(model, tokenizer, examples, senders, receiver, comps, dims)
    z = x @ sub.P
    lab = torch.tensor([p.k for p in prompts])
    d = sub.P.shape[1]
    cols: dict[str, list] = {"n": sub.counts}
    for j in range(d):
        cols[f"pc{j + 1}"] = sub.centroids[:, j].tolist()
    cols["step"] = [float("nan")] + (sub.centroids[1:] - sub.centroids[:-1]).norm(dim=-1).tolist()
    cols["spread"] = [float((z[lab == k] - sub.centroids[k]).pow(2).sum(-1).mean().sqrt()) if n else float("nan")
                      for k, n in enumerate(sub.counts)]
    total = float((z - z.mean(0)).pow(2).sum())
    within = float((z - sub.centroids[lab]).pow(2).sum())
    by_variant: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        by_variant.setdefault(p.variant, []).append(i)
    spacing = {}
    for v, idx in by_variant.items():
        ks = sorted({prompts[i].k for i in idx})
        if len(ks) > 1:
            cs = torch.stack([z[[i for i in idx if prompts[i].k == k]].mean(0) for k in ks])
            spacing[v] = float((cs[1:] - cs[:-1]).norm(dim=-1).mean())
    meta = {"task": task, "n": len(prompts), "receiver": receiver, "components": sub.components,
            "explained": sub.explained, "separation": 1.0 - within / total if total else float("nan"),
            "spacing_by_variant": spacing,
            "points": [[p.variant, p.k, *[round(float(v), 5) for v in z[i]]] for i, p in enumerate(prompts[:500])]}
    return Table("positional-subspace", [f"k{k}" for k in range(len(sub.counts))], cols, meta)


def _receiver_rows(model: HookedModel, prompts: Sequence[Prompt], lr: int, hr: int,
                   interventions: Sequence[Intervention] = ()) -> list[list[float]]:
    """Each prompt's receiver attention at END to each of its list positions."""
    name = f"blocks.{lr}.attn.hook_pattern"
    rows: list[list[float]] = [[] for _ in prompts]
    for idx in _groups(prompts).values():
        ids = torch.tensor([prompts[i].ids for i in idx])
        pat = model.run(ids, capture=[name], interventions=interventions, stop_at_layer=lr + 1).cache[name]
        for j, i in enumerate(idx):
            rows[i] = pat[j, hr, -1, list(prompts[i].items)].float().tolist()
    return rows


def _mean_by_position(rows: list[list[float]], width: int) -> list[float]:
    out = []
    for p in range(width):
        vals = [r[p] for r in rows if len(r) > p]
        out.append(sum(vals) / len(vals) if vals else float("nan"))
    return out


def centroid_traversal(model: HookedModel, tokenizer, fit_examples, examples, senders: Sequence[str], receiver: str,
                       comps: int = 1, dims: int = 3, task: str = "") -> Grid:
    """Rows: clean, then END's projection replaced by c_k for every k; columns: list position p;
    values: the receiver's mean attention from END to p (over prompts with a p-th item)."""
    sub, _, _ = fitted(model, tokenizer, fit_examples, senders, receiver, comps, dims)
    _, lr, hr = _heads(model, senders, receiver)
    prompts = list_prompts(model, tokenizer, examples)
    width = max(len(p.items) for p in prompts)
    clean_rows = _receiver_rows(model, prompts, lr, hr)
    grid = [_mean_by_position(clean_rows, width)]
    hits = []
    for k, c in enumerate(sub.centroids):
        if not sub.counts[k]:
            grid.append([float("nan")] * width)
            hits.append(float("nan"))
            continue
        rows = _receiver_rows(model, prompts, lr, hr, [_replacement(lr, sub.P, c[None])])
        grid.append(_mean_by_position(rows, width))
        able = [r for r in rows if len(r) > k]
        hits.append(sum(max(range(len(r)), key=r.__getitem__) == k for r in able) / len(able) if able else float("nan"))
    clean = grid[0]
    meta = {"task": task, "n": len(prompts), "receiver": receiver, "components": sub.components,
            "hit_rate": hits, "shift": [grid[k + 1][k] - clean[k] if k < width else float("nan")
                                         for k in range(len(hits))]}
    return Grid("centroid-traversal", ["centroid", "position"],
                {"centroid": ["clean"] + [f"c{k}" for k in range(len(hits))], "position": [f"p{p}" for p in range(width)]},
                grid, meta)


def _scores(model: HookedModel, prompts: Sequence[Prompt], interventions_for) -> tuple[list[bool], list[bool]]:
    """Per prompt: (answer is the argmax over its list's tokens, answer logit > distractor logit)."""
    listed, paired = [False] * len(prompts), [False] * len(prompts)
    for idx in _groups(prompts).values():
        ids = torch.tensor([prompts[i].ids for i in idx])
        logits = model.run(ids, interventions=interventions_for(idx)).logits[:, -1].float()
        for j, i in enumerate(idx):
            p = prompts[i]
            tokens = [p.ids[q] for q in p.items]
            listed[i] = tokens[int(logits[j, tokens].argmax())] == p.answer
            paired[i] = bool(logits[j, p.answer] > logits[j, p.distractor])
    return listed, paired


def centroid_replace(model: HookedModel, tokenizer, fit_examples, examples, senders: Sequence[str], receiver: str,
                     comps: int = 1, dims: int = 3, task: str = "") -> Table:
    """Accuracy (argmax over the list's items) per variant: clean, with END's projection replaced by
    the centroid of the prompt's own answer position, and by the next position's (control)."""
    from analyses.evaluate import _variant_order

    sub, _, _ = fitted(model, tokenizer, fit_examples, senders, receiver, comps, dims)
    _, lr, _ = _heads(model, senders, receiver)
    prompts = [p for p in list_prompts(model, tokenizer, examples) if p.k < len(sub.counts) and sub.counts[p.k]]
    if not prompts:
        raise BadInput("no held-out prompt has an answer position seen in the fitting sample")
    K = len(sub.counts)

    def own(idx: list[int]) -> list[Intervention]:
        return [_replacement(lr, sub.P, sub.centroids[[prompts[i].k for i in idx]])]

    def other(idx: list[int]) -> list[Intervention]:
        ks = []
        for i in idx:
            k = (prompts[i].k + 1) % len(prompts[i].items)
            ks.append(k if k < K and sub.counts[k] else prompts[i].k)
        return [_replacement(lr, sub.P, sub.centroids[ks])]

    before, before_pair = _scores(model, prompts, lambda idx: [])
    after, after_pair = _scores(model, prompts, own)
    wrong, _ = _scores(model, prompts, other)
    groups: dict[str, list[int]] = {}
    for i, p in enumerate(prompts):
        groups.setdefault(p.variant, []).append(i)
    labels = sorted(groups, key=_variant_order) + ["all"]
    groups["all"] = list(range(len(prompts)))

    def rate(xs: list[bool], v: str) -> float:
        return sum(xs[i] for i in groups[v]) / len(groups[v])

    cols = {"gain": [rate(after, v) - rate(before, v) for v in labels], "before": [rate(before, v) for v in labels],
            "after": [rate(after, v) for v in labels], "wrong_centroid": [rate(wrong, v) for v in labels],
            "n": [len(groups[v]) for v in labels]}
    meta = {"task": task, "n": len(prompts), "receiver": receiver, "components": sub.components,
            "held_out_gain": cols["gain"][-1], "pair_accuracy_before": rate(before_pair, "all"),
            "pair_accuracy_after": rate(after_pair, "all")}
    return Table("centroid-replace", labels, cols, meta)
