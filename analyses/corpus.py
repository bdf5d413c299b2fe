"""Prompt sets for the analyses that average over many texts (erasure, next-token neurons): a
corpus file or a built-in task's prompts, tokenised batch by batch, and the one loop that streams
them through the model with progress and cancel (``CorpusLoop``).

A corpus file is either JSONL (one object per line with a ``text`` field, or ``prompt``) or plain
text (one document per line). Blank lines are skipped. Documents longer than the model's context
are cut to it: a corpus is read, not typed, and a long document still has useful prefixes.

A session reads a prompt set once: its tokenised documents are kept (a few sets per tokenizer,
files up to ``CACHE_BYTES``), keyed by the file's path, size and modification time (or the task,
n and seed), so the next analysis on the same texts starts at once. Larger files stream from disk
on every run, never held in memory.
"""

from __future__ import annotations

import json
import os
import weakref
from collections import OrderedDict
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar

from analyses.errors import BadInput
from analyses.tokens import padding_id, text_ids

T = TypeVar("T")

if TYPE_CHECKING:
    from torch import Tensor

    from analyses.models.base import HookedModel

Progress = Callable[[int, int], None] | None
Stop = Callable[[], bool] | None
CACHE_BYTES = 16 * 2**20  # corpus files up to this size are kept tokenised for the session
CACHE_SETS = 4  # prompt sets kept per tokenizer


@dataclass
class CorpusBatch:
    """Documents ``start .. start + len(texts)`` of the corpus as right-padded ids [b, s].

    Right padding needs no attention mask in a causal model: a position never sees the padding
    after it. Read position ``p`` of row ``i`` only where ``p < lengths[i]``."""

    ids: Tensor
    lengths: list[int]
    texts: list[str]
    start: int


def corpus_source(corpus: str | None, task: str | None) -> str:
    """Which one source the texts come from ("corpus" or "task"); checked before a model loads."""
    if corpus and task:
        raise BadInput("give one source of texts: --corpus FILE or --task NAME, not both")
    if not corpus and not task:
        raise BadInput("give the texts to measure on: --corpus FILE (text or JSONL) or --task NAME")
    if corpus and not Path(corpus).is_file():
        raise BadInput(f"--corpus: no such file {corpus!r}")
    return "corpus" if corpus else "task"


def corpus_texts(corpus: str | None = None, task: str | None = None, n: int | None = None,
                 seed: int = 0, answers: bool = True) -> Iterator[str]:
    """Up to ``n`` documents (all when None), lazily. A task's documents are its held-out prompts
    followed by their answers, so every position has a true next token; without ``answers`` the
    prompts alone (the next-token neurons' texts: an appended answer would be read as context)."""
    corpus_source(corpus, task)
    if n is not None and n <= 0:
        raise BadInput("--n must be positive")
    texts = _file_texts(Path(corpus)) if corpus else _task_texts(task, n or 256, seed, answers)
    for i, text in enumerate(texts):
        if n is not None and i >= n:
            return
        yield text


def count_texts(corpus: str | None = None, task: str | None = None, n: int | None = None) -> int:
    """How many documents ``corpus_texts`` will give (a cheap pass over a file), for progress."""
    if task:
        return n or 256
    with open(corpus, "rb") as f:
        total = sum(1 for line in f if line.strip())
    return total if n is None else min(n, total)


def _task_texts(task: str, n: int, seed: int, answers: bool = True) -> Iterator[str]:
    from analyses.tasks import task_examples

    for e in task_examples(task, n, seed, split="test"):
        yield e.prompt + e.answer if answers else e.prompt


def _file_texts(path: Path) -> Iterator[str]:
    as_json = path.suffix.lower() in (".jsonl", ".json")
    try:
        with open(path, encoding="utf-8") as f:
            for number, line in enumerate(f, 1):
                if not line.strip():
                    continue
                yield _json_text(line, path, number) if as_json else line.rstrip("\n")
    except UnicodeDecodeError as e:
        raise BadInput(f"{path}: not UTF-8 text ({e.reason} at byte {e.start})") from None


def _json_text(line: str, path: Path, number: int) -> str:
    try:
        row = json.loads(line)
    except json.JSONDecodeError as e:
        raise BadInput(f"{path}:{number}: not JSON ({e.msg})") from None
    text = row.get("text", row.get("prompt")) if isinstance(row, dict) else None
    if not isinstance(text, str) or not text.strip():
        raise BadInput(f"{path}:{number}: a corpus line needs a non-empty \"text\" (or \"prompt\") string")
    return text


def corpus_batches(tokenizer, texts: Iterable[str], batch_size: int, n_ctx: int,
                   prepend_bos: bool | None = None) -> Iterator[CorpusBatch]:
    """``texts`` tokenised by the tokenizer's defaults (``prepend_bos`` overrides), cut to
    ``n_ctx`` tokens, in right-padded batches of ``batch_size``. Documents with no tokens are
    skipped (they still count in ``start``)."""
    docs = ((_ids(tokenizer, text, prepend_bos)[:n_ctx], text) for text in texts)
    return _batched(docs, batch_size, padding_id(tokenizer))


def _batched(docs: Iterable[tuple[list[int], str]], batch_size: int, pad: int) -> Iterator[CorpusBatch]:
    """Tokenised documents (ids, text) in right-padded batches; empty ones skipped but counted."""
    from analyses.tokens import pad_batch

    rows: list[list[int]] = []
    kept: list[str] = []
    start = 0
    for index, (ids, text) in enumerate(docs):
        if ids:
            rows.append(ids), kept.append(text)
        if len(rows) == batch_size:
            yield CorpusBatch(pad_batch(rows, pad)[0], [len(r) for r in rows], kept, start)
            rows, kept, start = [], [], index + 1
    if rows:
        yield CorpusBatch(pad_batch(rows, pad)[0], [len(r) for r in rows], kept, start)


def _ids(tokenizer, text: str, prepend_bos: bool | None) -> list[int]:
    ids = text_ids(tokenizer, text, prepend_bos is not False)
    bos = tokenizer.bos_token_id
    if prepend_bos and bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, bos)
    return ids


# ---- a prompt set, read once a session, and the loop over it -----------------------------------


@dataclass(frozen=True)
class PromptSet:
    """Where the texts come from: a file or a task, how many, the batch size, BOS."""

    corpus: str | None = None
    task: str | None = None
    n: int | None = None
    seed: int = 0
    batch: int = 16
    prepend_bos: bool | None = None
    answers: bool = True  # a task's prompts followed by their answers (False: the prompts alone)

    def describe(self) -> str:
        return f"task {self.task}" if self.task else f"corpus {self.corpus}"

    def source(self) -> str:
        return self.corpus or f"task:{self.task}"


# tokenizer -> {(source key, prepend_bos, n_ctx): (total, [(ids, text)])}, least recently used first
_CACHE: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _source_key(prompts: PromptSet) -> tuple | None:
    """What identifies the texts: the task, n and seed; or the file's path, size and mtime (None
    for a file too large to keep)."""
    if prompts.task:
        return ("task", prompts.task, prompts.n, prompts.seed, prompts.answers)
    stat = os.stat(prompts.corpus)
    if stat.st_size > CACHE_BYTES:
        return None
    return ("file", os.path.abspath(prompts.corpus), stat.st_size, stat.st_mtime_ns, prompts.n)


def prompt_documents(tokenizer, prompts: PromptSet, n_ctx: int) -> tuple[int, Iterable[tuple[list[int], str]]]:
    """(how many documents, the documents as (ids cut to ``n_ctx``, text)): from the session's
    cache when this prompt set was read before with this tokenizer, else read (and kept, unless
    the file is too large to keep)."""
    corpus_source(prompts.corpus, prompts.task)
    key = _source_key(prompts)
    sets = None
    if key is not None:
        key = (key, prompts.prepend_bos, n_ctx)
        try:
            sets = _CACHE.setdefault(tokenizer, OrderedDict())
        except TypeError:  # a tokenizer that takes no weak reference: read every time
            sets = None
    if sets is not None and key in sets:
        sets.move_to_end(key)
        return sets[key]
    total = count_texts(prompts.corpus, prompts.task, prompts.n)
    texts = corpus_texts(prompts.corpus, prompts.task, prompts.n, prompts.seed, prompts.answers)
    docs = ((_ids(tokenizer, text, prompts.prepend_bos)[:n_ctx], text) for text in texts)
    if sets is None:
        return total, docs
    sets[key] = (total, list(docs))
    while len(sets) > CACHE_SETS:
        sets.popitem(last=False)
    return sets[key]


class CorpusLoop:
    """The batches of a prompt set, with a stop check before each and progress after each: the
    loop every corpus analysis runs. After it: ``texts`` measured, ``read`` (documents up to the
    end of the last batch, empty ones included) and ``partial`` (stopped early)."""

    def __init__(self, batches: Iterable[CorpusBatch], total: int, progress: Progress = None,
                 should_stop: Stop = None, prompts: PromptSet | None = None):
        self._batches, self.total = batches, total
        self.progress, self.should_stop, self.prompts = progress, should_stop, prompts
        self.partial = False
        self.halved = False  # a batch ran out of memory: batches are measured in halves since
        self.texts = self.read = 0

    @classmethod
    def over(cls, model: HookedModel, tokenizer, prompts: PromptSet, progress: Progress = None,
             should_stop: Stop = None) -> CorpusLoop:
        """The loop over ``prompts`` tokenised for ``model`` (cut to its context); the texts are
        read when the loop starts, so a bad argument checked before it is reported first."""
        loop = cls((), 0, progress, should_stop, prompts)
        loop._batches = loop._read(tokenizer, prompts, model.shape.n_ctx or 2048)
        return loop

    def _read(self, tokenizer, prompts: PromptSet, n_ctx: int) -> Iterator[CorpusBatch]:
        self.total, docs = prompt_documents(tokenizer, prompts, n_ctx)
        yield from _batched(docs, prompts.batch, padding_id(tokenizer))

    def __iter__(self) -> Iterator[CorpusBatch]:
        for batch in self._batches:
            if self.should_stop is not None and self.should_stop():
                self.partial = True
                return
            yield batch
            self.texts += len(batch.texts)
            self.read = batch.start + len(batch.texts)
            if self.progress is not None:
                self.progress(min(self.read, self.total) if self.total else self.read, self.total)

    def map(self, step: Callable[[CorpusBatch], T]) -> Iterator[tuple[CorpusBatch, T]]:
        """Each batch with ``step(batch)``, its measurement. A batch that runs out of memory (CUDA's
        or the CPU's) is measured again as two halves, and every later batch in halves too; a half
        that runs out again gives up. ``step`` must not accumulate (the caller does, from what it
        yields): a failed batch then leaves nothing behind. Each text's rows are computed alone,
        so the numbers are those of the whole batch; ``halved`` says it happened."""
        for batch in self:
            if not self.halved:
                try:
                    yield batch, step(batch)
                    continue
                except (MemoryError, _oom_error()):
                    from analyses.patching import release_memory

                    release_memory()
                    self.halved = True
            for half in split_batch(batch):
                yield half, step(half)

    def stopped(self) -> bool:
        """Whether a stop was asked for now: for loops with many forwards per batch (one per
        component on a large model), which must not wait for the batch's end."""
        if self.should_stop is not None and self.should_stop():
            self.partial = True
        return self.partial

    def meta(self) -> dict:
        halved = {"halved_batch": True} if self.halved else {}  # out of memory: batches were split
        return {"data": self.prompts.describe(), "texts": self.texts, "partial": self.partial, **halved}


def split_batch(batch: CorpusBatch) -> list[CorpusBatch]:
    """A batch as two halves (one, if it holds a single text), each as wide as the batch: every
    row is the same tensor it was, so a measurement per row is unchanged."""
    h = (len(batch.texts) + 1) // 2
    if h == len(batch.texts):
        return [batch]
    return [CorpusBatch(batch.ids[:h], batch.lengths[:h], batch.texts[:h], batch.start),
            CorpusBatch(batch.ids[h:], batch.lengths[h:], batch.texts[h:], batch.start + h)]


def _oom_error() -> type[BaseException]:
    import torch

    return torch.OutOfMemoryError
