"""A neuron's top-activating texts of a prompt set, each trimmed to its shortest suffix keeping
most of the activation (definitions: ``analyses.neurons``)."""

from __future__ import annotations

import heapq
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from analyses.corpus import CorpusBatch, CorpusLoop, Progress, PromptSet, Stop
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.models.hooks import Intervention
from analyses.neurons.congruence import check_neuron
from analyses.results import TokenValues


def neuron_activations(model: HookedModel, ids: Tensor, layer: int, neurons: Sequence[int],
                       full: bool = False) -> Tensor:
    """``blocks.{layer}.mlp.hook_post[..., neurons]`` [b, s, k] of a right-padded batch. The
    hook keeps only those columns and the run stops after the neuron's block (``full``: runs to
    the logits, for the benchmark's comparison), so a corpus streams at about a forward's cost."""
    kept: list[Tensor] = []
    idx = torch.as_tensor(list(neurons))

    def keep(x: Tensor) -> Tensor:
        kept.append(x[..., idx.to(x.device)].float())
        return x

    iv = Intervention(f"blocks.{layer}.mlp.hook_post", op="fn", fn=keep)
    model.run(ids, interventions=[iv], stop_at_layer=None if full else layer + 1)
    return kept[0]


@dataclass(order=True)
class _Doc:
    act: float
    index: int
    pos: int = field(compare=False)
    ids: list[int] = field(compare=False)


def top_documents(model: HookedModel, batches: Iterable[CorpusBatch], layer: int, neuron: int, k: int,
                  progress: Progress = None, total: int = 0, should_stop: Stop = None,
                  acts_of: Callable[[Tensor], Tensor] | None = None) -> tuple[list[_Doc], int, bool]:
    """The ``k`` documents with the highest max activation of the neuron (ties: earlier document),
    with the position of that max; also how many documents were read and whether it stopped early.
    ``batches``: a ``CorpusLoop`` (progress and stop are its own) or plain batches. ``acts_of(ids)``
    [b, s] measures another unit instead (an SAE feature: analyses.sae.corpus)."""
    many_of = None if acts_of is None else (lambda ids: acts_of(ids)[..., None])
    docs, read, stopped = top_documents_many(model, batches, layer, [neuron], k, progress, total, should_stop,
                                             many_of)
    return docs[neuron], read, stopped


def top_documents_many(model: HookedModel, batches: Iterable[CorpusBatch], layer: int, neurons: Sequence[int],
                       k: int, progress: Progress = None, total: int = 0, should_stop: Stop = None,
                       acts_of: Callable[[Tensor], Tensor] | None = None) -> tuple[dict[int, list[_Doc]], int, bool]:
    """``top_documents`` of several neurons of one layer in one pass over the corpus (``acts_of(ids)``:
    [b, s, units] of other units)."""
    loop = batches if isinstance(batches, CorpusLoop) else CorpusLoop(batches, total, progress, should_stop)
    heaps: dict[int, list[_Doc]] = {n: [] for n in neurons}
    if acts_of is None:
        acts_of = lambda ids: neuron_activations(model, ids, layer, list(heaps))  # noqa: E731
    for batch, acts in loop.map(lambda b: acts_of(b.ids).cpu()):  # [b, s, units]; out of memory: in halves
        for j, heap in enumerate(heaps.values()):
            for i, length in enumerate(batch.lengths):
                row = acts[i, :length, j]
                pos = int(row.argmax())
                doc = _Doc(float(row[pos]), -(batch.start + i), pos, batch.ids[i, :length].tolist())
                if len(heap) < k:
                    heapq.heappush(heap, doc)
                elif doc > heap[0]:
                    heapq.heapreplace(heap, doc)
    return {n: sorted(h, reverse=True) for n, h in heaps.items()}, loop.read, loop.partial


def latest_start(acts_by_start: Callable[[list[int]], list[float]], end: int, original: float, ratio: float,
                 first: int = 0, batch: int = 16) -> int:
    """The latest start index s in [first, end] with ``acts_by_start([s])[0] >= ratio * original``
    (the trimming rule); starts are scored from ``end`` down in chunks of 1, 2, 4, ... up to
    ``batch`` (the latest start is usually near the end: this scores at most twice the starts a
    one-by-one search would), and ``first`` when none qualifies (nothing to trim, e.g. a
    non-positive original activation)."""
    if original <= 0:
        return first
    threshold = ratio * original
    hi, size = end, 1
    while hi >= first:
        starts = list(range(hi, max(first, hi - size + 1) - 1, -1))
        for s, a in zip(starts, acts_by_start(starts)):
            if a >= threshold:
                return s
        hi, size = hi - len(starts), min(2 * size, batch)
    return first


@dataclass
class Trimmed:
    """A trimmed prompt: its ids (BOS kept in front where the text had one), the activation of
    each of its tokens, the source document and where the suffix started in it."""

    ids: list[int]
    acts: list[float]
    doc: int
    start: int
    original: float
    full_length: int


def trim(model: HookedModel, doc_ids: list[int], pos: int, layer: int, neuron: int, ratio: float,
         bos: int | None, batch: int = 16, acts_of: Callable[[Tensor], Tensor] | None = None,
         original: float | None = None) -> tuple[list[int], int, list[float]]:
    """``doc_ids`` cut after ``pos`` and from its latest start keeping >= ratio of the activation
    at ``pos`` (``original``, measured here unless given: the corpus scan has it); a leading BOS
    stays. Returns (ids, start, the activation at each of its tokens). ``acts_of``: as in
    ``top_documents``."""
    lead = [doc_ids[0]] if bos is not None and doc_ids and doc_ids[0] == bos else []
    first = len(lead)
    pad = 0
    scored: dict[int, list[float]] = {}  # start -> the suffix's activations, kept from the search

    def acts_at_end(starts: list[int]) -> list[float]:
        rows = [lead + doc_ids[s : pos + 1] for s in starts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        acts = (acts_of(ids) if acts_of is not None else neuron_activations(model, ids, layer, [neuron])[..., 0]).cpu()
        scored.update({s: acts[i, : len(r)].tolist() for i, (s, r) in enumerate(zip(starts, rows))})
        return [float(acts[i, len(r) - 1]) for i, r in enumerate(rows)]

    if original is None:
        original = acts_at_end([first])[0]
    start = latest_start(acts_at_end, pos, original, ratio, first=first, batch=batch)
    if start not in scored:  # nothing qualified: the whole text, not scored by the search
        acts_at_end([start])
    return lead + doc_ids[start : pos + 1], start, scored[start]


def max_activating(model: HookedModel, tokenizer, batches: Iterable, layer: int, neuron: int, k: int = 20,
                   ratio: float = 0.8, max_len: int | None = 100, progress=None, total: int = 0,
                   should_stop=None) -> tuple[list[Trimmed], dict]:
    """The neuron's top-``k`` documents, each trimmed (``trim``), dropping trimmed prompts longer
    than ``max_len`` tokens (the paper's 100); and the run's facts."""
    layer, neuron = check_neuron(model, layer, neuron)
    if not 0 < ratio <= 1:
        raise BadInput(f"--ratio {ratio}: a share of the activation in (0, 1]")
    docs, read, stopped = top_documents(model, batches, layer, neuron, k, progress, total, should_stop)
    out, dropped = trim_documents(model, docs, layer, neuron, ratio, max_len, tokenizer.bos_token_id)
    meta = {"layer": layer, "neuron": neuron, "documents": read, "stopped": stopped, "ratio": ratio,
            "dropped_long": dropped, **({"halved_batch": True} if getattr(batches, "halved", False) else {})}
    return out, meta


def trim_documents(model: HookedModel, docs: list[_Doc], layer: int, neuron: int, ratio: float,
                   max_len: int | None, bos: int | None,
                   acts_of: Callable[[Tensor], Tensor] | None = None) -> tuple[list[Trimmed], int]:
    """Each document trimmed (``trim``), those longer than ``max_len`` dropped; and how many were.
    ``acts_of``: as in ``top_documents``."""
    out = []
    dropped = 0
    for d in docs:
        ids, start, acts = trim(model, d.ids, d.pos, layer, neuron, ratio, bos, acts_of=acts_of, original=d.act)
        if max_len is not None and len(ids) > max_len:
            dropped += 1
            continue
        out.append(Trimmed(ids, acts, -d.index, start, d.act, d.pos + 1))
    return out, dropped


def max_acts_result(tokenizer, prompts: list[Trimmed], meta: dict) -> TokenValues:
    """Trimmed prompts as coloured text: one row per prompt, its tokens' activations."""
    from analyses.tokens import token_strings

    labels = [f"doc {p.doc} act {p.original:.3g}" for p in prompts]
    rows = [{"doc": p.doc, "start": p.start, "max_act": p.original, "last_act": p.acts[-1],
             "kept_tokens": len(p.ids), "cut_at": p.full_length} for p in prompts]
    return TokenValues("neuron-max-acts", labels, [token_strings(tokenizer, p.ids) for p in prompts],
                       [p.acts for p in prompts], "activation", {**meta, "prompts": rows})


def corpus_prompts(model: HookedModel, tokenizer, layer: int, neuron: int, corpus: str | None, task: str | None,
                   n: int | None, seed: int, batch: int, prepend_bos: bool | None, top: int, ratio: float,
                   max_len: int | None, progress: Progress = None, should_stop: Stop = None) -> tuple[list[Trimmed], dict]:
    """The neuron's trimmed max-activating prompts from a corpus file or a task (``analyses.corpus``)."""
    prompts = PromptSet(corpus, task, n, seed, batch, prepend_bos, answers=False)  # the answer is no context
    loop = CorpusLoop.over(model, tokenizer, prompts, progress, should_stop)
    found, meta = max_activating(model, tokenizer, loop, layer, neuron, top, ratio, max_len)
    if not found:
        raise BadInput("no prompt left: the corpus is empty or every trimmed prompt is longer than --max-len")
    return found, {**meta, "source": prompts.source()}
