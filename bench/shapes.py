"""A GPT-2-small shape for benchmarks: random weights, 12 layers of d 768 x 12 heads, a 50,257-token
vocabulary whose first words are every word of the built-in tasks (so IOI, recall and the others
tokenize to whole words), written once with ``build_checkpoint`` into a temporary folder."""

from __future__ import annotations

import tempfile
from pathlib import Path

GPT2_VOCAB = 50257
GPT2_SMALL = {"d_model": 768, "n_layers": 12, "n_heads": 12, "n_ctx": 1024}


def gpt2_small(folder: str | None = None) -> str:
    """The checkpoint's folder (built on first use, reused after)."""
    from analyses.tasks import vocabulary
    from analyses.toys.checkpoints import NAMES, SPECIALS, WORDS, build_checkpoint

    out = Path(folder or Path(tempfile.gettempdir()) / "workbench-bench-gpt2-small")
    if not (out / "config.json").is_file():
        words = list(dict.fromkeys(NAMES + WORDS + vocabulary()))
        words += [f"w{i}" for i in range(GPT2_VOCAB - len(SPECIALS) - len(words))]
        build_checkpoint(out, "gpt2", words=words, **GPT2_SMALL)
    return str(out)
