"""Prompt sets for the analyses that average over many texts (erasure, next-token neurons): a
corpus file or a built-in task's prompts, read lazily and tokenised batch by batch, so a corpus
larger than memory streams through the model with progress and cancel.

A corpus file is either JSONL (one object per line with a ``text`` field, or ``prompt``) or plain
text (one document per line). Blank lines are skipped. Documents longer than the model's context
are cut to it: a corpus is read, not typed, and a long document still has useful prefixes.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

from analyses.errors import BadInput

if TYPE_CHECKING:
    from torch import Tensor


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
                 seed: int = 0) -> Iterator[str]:
    """Up to ``n`` documents (all when None), lazily. A task's documents are its held-out prompts
    followed by their answers, so every position has a true next token."""
    corpus_source(corpus, task)
    if n is not None and n <= 0:
        raise BadInput("--n must be positive")
    texts = _file_texts(Path(corpus)) if corpus else _task_texts(task, n or 256, seed)
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


def _task_texts(task: str, n: int, seed: int) -> Iterator[str]:
    from analyses.tasks import task_examples

    for e in task_examples(task, n, seed, split="test"):
        yield e.prompt + e.answer


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
    from analyses.tokens import pad_batch

    pad = tokenizer.pad_token_id if tokenizer.pad_token_id is not None else 0
    rows: list[list[int]] = []
    kept: list[str] = []
    start = index = 0
    for index, text in enumerate(texts):
        ids = _ids(tokenizer, text, prepend_bos)[:n_ctx]
        if ids:
            rows.append(ids), kept.append(text)
        if len(rows) == batch_size:
            yield CorpusBatch(pad_batch(rows, pad)[0], [len(r) for r in rows], kept, start)
            rows, kept, start = [], [], index + 1
    if rows:
        yield CorpusBatch(pad_batch(rows, pad)[0], [len(r) for r in rows], kept, start)


def _ids(tokenizer, text: str, prepend_bos: bool | None) -> list[int]:
    ids = list(tokenizer(text, add_special_tokens=prepend_bos is not False)["input_ids"])
    bos = tokenizer.bos_token_id
    if prepend_bos and bos is not None and (not ids or ids[0] != bos):
        ids.insert(0, bos)
    return ids
