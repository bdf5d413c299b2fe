"""Analyses as the analyst asks for them: prompt text and token spellings in, a result out.

The CLI and the TUI both call ``run_analysis``, so a number seen in the TUI is the number
``workbench run`` prints.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from analyses.errors import BadInput
from analyses.results import Table
from analyses.tokens import encode_prompt, resolve_token, token_strings
from sessions.loading import LoadedModel


def _prepare(loaded: LoadedModel, prompt: str, answer: str, distractor: str | None, prepend_bos: bool | None):
    tok, shape = loaded.tokenizer, loaded.hooked.shape
    ids = encode_prompt(tok, prompt, prepend_bos, shape.n_ctx)
    a = resolve_token(tok, answer)
    d = resolve_token(tok, distractor) if distractor else None
    if d is not None and d == a:
        raise BadInput(f"answer and distractor are the same token ({answer!r})")
    meta = {"prompt_tokens": token_strings(tok, ids), "answer": answer, "distractor": distractor}
    return ids, a, d, meta


def run_dla(
    loaded: LoadedModel,
    prompt: str,
    answer: str,
    distractor: str | None = None,
    by: str = "layer",
    pos: int = -1,
    prepend_bos: bool | None = None,
) -> Table:
    from analyses.dla import dla

    ids, a, d, meta = _prepare(loaded, prompt, answer, distractor, prepend_bos)
    table = dla(loaded.hooked, ids, a, d, by=by, pos=pos)
    table.meta = {**meta, **table.meta}
    return table


def run_logit_lens(
    loaded: LoadedModel,
    prompt: str,
    answer: str,
    distractor: str | None = None,
    pos: int = -1,
    prepend_bos: bool | None = None,
) -> Table:
    from analyses.dla import logit_lens

    ids, a, d, meta = _prepare(loaded, prompt, answer, distractor, prepend_bos)
    decode = lambda i: loaded.tokenizer.decode([i], clean_up_tokenization_spaces=False)  # noqa: E731
    table = logit_lens(loaded.hooked, ids, a, d, pos=pos, decode=decode)
    table.meta = {**meta, **table.meta}
    return table


def run_eval(
    loaded: LoadedModel, task: str | None = None, pairs: str | None = None, n: int = 500, seed: int = 0, split: str = "test"
) -> Table:
    """Accuracy on a built-in task, or on the clean prompts of a prompt-pair file."""
    from analyses.evaluate import evaluate
    from analyses.tasks import Example, task_examples
    from analyses.tasks.pair_files import read_pairs

    if pairs is not None:
        examples = [Example(p.clean, p.answer, p.distractor, p.variant or "pairs") for p in read_pairs(pairs)]
        return evaluate(loaded.hooked, loaded.tokenizer, str(pairs), examples)
    if task is None:
        raise BadInput("eval needs --task or --pairs")
    return evaluate(loaded.hooked, loaded.tokenizer, task, task_examples(task, n, seed, split))


ANALYSES: dict[str, Callable[..., Table]] = {"dla": run_dla, "logit-lens": run_logit_lens, "eval": run_eval}


def run_analysis(loaded: LoadedModel, name: str, **params: Any) -> Table:
    if name not in ANALYSES:
        raise BadInput(f"unknown analysis {name!r}; available: {', '.join(ANALYSES)}")
    return ANALYSES[name](loaded, **params)
