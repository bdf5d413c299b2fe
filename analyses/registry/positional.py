"""The positional subspace of inhibition components (Talking Heads, spec E3.4 and E3.6a): its
centroids per answer position, the receiver's attention as END moves from centroid to centroid,
and accuracy with END set to the right centroid. Definitions: docs/composition.md."""

from __future__ import annotations

from typing import Any

from analyses.errors import BadInput
from analyses.labels import check_head_syntax, match_node
from analyses.registry import Analysis, Param, declare, names_list
from analyses.registry._facts import num, rate

PARAMS = (
    Param("task", "task", "the task: its answers (and distractors) must occur in the prompt, e.g. ioi, recall, "
          "laundry", default="ioi", metavar="NAME", choices=("ioi", "ioi-abc", "recall", "laundry")),
    Param("n", "int", "prompts fitted (train split) and measured (test split)", default=200, minimum=2),
    Param("seed", "int", "the samples' seed", default=0),
    Param("senders", "nodes", "the sender heads whose components span the subspace, e.g. L0H1,L0H3", required=True,
          metavar="HEADS"),
    Param("receiver", "text", "the receiver head in a later layer, e.g. L1H2", required=True, metavar="HEAD"),
    Param("comps", "int", "components per sender (those with the largest Q-composition with the receiver)",
          default=1, minimum=1),
    Param("dims", "int", "principal components kept (the paper's subspace is 3-D)", default=3, minimum=1),
)


def _check(p: dict[str, Any]) -> None:
    """Head syntax, and senders before the receiver: refused before the model loads."""
    check_head_syntax(p["receiver"], "--receiver")
    senders = names_list(p["senders"])
    if not senders:
        raise BadInput("--senders: name at least one sender head, e.g. L0H1")
    for s in senders:
        check_head_syntax(s, "--senders")
    receiver = match_node(p["receiver"])
    late = [s for s in senders if match_node(s).layer >= receiver.layer]
    if late:
        raise BadInput(f"--senders {', '.join(late)}: a sender must be in a layer before the receiver {p['receiver']}")


def _samples(task: str, n: int, seed: int):
    from analyses.tasks import task_examples

    return task_examples(task, n, seed, "train"), task_examples(task, n, seed, "test")


def run_subspace(lm, task: str, n: int, seed: int, senders: str, receiver: str, comps: int, dims: int):
    from analyses.talking_heads.positional import positional_subspace

    return positional_subspace(lm.hooked, lm.tokenizer, _samples(task, n, seed)[0], names_list(senders), receiver,
                               comps, dims, task)


def run_traversal(lm, task: str, n: int, seed: int, senders: str, receiver: str, comps: int, dims: int):
    from analyses.talking_heads.positional import centroid_traversal

    fit, held = _samples(task, n, seed)
    return centroid_traversal(lm.hooked, lm.tokenizer, fit, held, names_list(senders), receiver, comps, dims, task)


def run_replace(lm, task: str, n: int, seed: int, senders: str, receiver: str, comps: int, dims: int):
    from analyses.talking_heads.positional import centroid_replace

    fit, held = _samples(task, n, seed)
    return centroid_replace(lm.hooked, lm.tokenizer, fit, held, names_list(senders), receiver, comps, dims, task)


def subspace_facts(table: Any) -> list[str]:
    """How much of the subspace the answer position explains, and the centroids' spacing."""
    m = table.meta
    steps = [s for s in table.columns["step"][1:] if s == s]
    return [f"answer position explains {rate(m.get('separation'))} of the variance in {len(m.get('explained', []))} "
            f"dims of {', '.join(m.get('components', []))}; mean centroid step "
            f"{num(sum(steps) / len(steps) if steps else float('nan'), sign=False)}"]


def traversal_facts(grid: Any) -> list[str]:
    """How often the receiver's strongest list position follows the centroid."""
    hits = [h for h in grid.meta.get("hit_rate", []) if h == h]
    mean = sum(hits) / len(hits) if hits else float("nan")
    return [f"with END at centroid k, {grid.meta.get('receiver')} attends most to list position k in "
            f"{rate(mean)} of prompts (mean over k)"]


def replace_facts(table: Any) -> list[str]:
    """The accuracy change, and the wrong-centroid control."""
    i = table.labels.index("all")
    c = table.columns
    return [f"accuracy {rate(c['before'][i])} -> {rate(c['after'][i])} with the own centroid "
            f"(gain {num(c['gain'][i])}); {rate(c['wrong_centroid'][i])} with the next position's"]


declare(Analysis(
    "positional-subspace", "positional subspace", "centroids of END in the subspace of the senders' top components, "
    "per answer position", PARAMS, run_subspace, "table", "model", key=("task", "senders", "receiver"),
    excludes=("mamba",), check=_check, headline=subspace_facts,
    doc="The write directions of each sender's components with the largest Q-composition with the receiver, "
        "orthonormalised; the receiver's input at END projected on them and reduced by PCA to --dims; per answer "
        "position k: centroid, step from c_{k-1}, spread; meta: variance explained by k, spacing per list length.",
))
declare(Analysis(
    "centroid-traversal", "centroid traversal", "the receiver's attention over list positions with END moved to "
    "each position's centroid", PARAMS, run_traversal, "grid", "model", key=("task", "senders", "receiver"),
    excludes=("mamba",), check=_check, headline=traversal_facts,
    doc="x <- x - P Pᵀx + P c_k at END of the receiver's input, for every k (centroids fitted on the train split); "
        "rows: clean and c_k; columns: list position; values: mean attention from END (test split).",
))
declare(Analysis(
    "centroid-replace", "centroid replacement", "accuracy per variant with END set to the centroid of the answer's "
    "position", PARAMS, run_replace, "table", "model", key=("task", "senders", "receiver"),
    excludes=("mamba",), check=_check, headline=replace_facts,
    doc="Each held-out prompt's END projection replaced by the centroid of its own answer position: accuracy "
        "(argmax over the list's items) before, after, gain per variant; control: the next position's centroid.",
))
