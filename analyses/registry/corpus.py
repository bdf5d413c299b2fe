"""The parameters of analyses that average over many texts: a corpus file or a built-in task's
prompts, how many, and in what batches (declares no analysis of its own)."""

from __future__ import annotations

from typing import Any

from analyses.registry import Param, shared

CORPUS = shared(
    Param("corpus", "path", "texts to measure on: one per line, or JSONL with a \"text\" field", metavar="FILE",
          label="corpus file"),
    Param("task", "task", "or the held-out prompts of a built-in task (default: the model's own, when no file is "
          "given)", metavar="NAME"),
    Param("n", "int", "at most this many texts (default: a task's 256, a file's all)", minimum=1),
    Param("seed", "int", "with --task: the sample's seed", default=0),
    Param("batch", "int", "texts per forward pass", default=16, minimum=1),
    Param("prepend_bos", "bos", "prepend the tokenizer's BOS token (default: as the tokenizer does)", label="BOS"),
)


def check_corpus(p: dict[str, Any]) -> None:
    """One source of texts, checked before the model loads."""
    from analyses.corpus import corpus_source

    corpus_source(p.get("corpus"), p.get("task"))
