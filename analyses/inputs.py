"""What the analyst types, as tensors: a prompt with its answer, or clean/corrupted pairs from
one typed pair, a pairs file, or a sample of a built-in task. Every check names what was wrong."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from analyses.errors import BadInput
from analyses.preparation import step
from analyses.tokens import (answer_spelling, encode_prompt, fit_answers, resolve_token, shown, token_strings,
                             visible_tokens)

if TYPE_CHECKING:
    from torch import Tensor


@dataclass
class PromptInput:
    """One prompt's ids [1, pos], its answer and optional distractor ids, and the run's facts."""

    ids: Tensor
    answer: int
    distractor: int | None
    meta: dict[str, Any]


def prompt_input(lm, prompt: str, answer: str | None, distractor: str | None = None,
                 prepend_bos: bool | None = None) -> PromptInput:
    import torch

    tok = lm.tokenizer
    ids = encode_prompt(tok, prompt, prepend_bos, lm.hooked.shape.n_ctx)
    a = resolve_token(tok, answer) if answer else None
    d = resolve_token(tok, distractor) if distractor else None
    if d is not None and d == a:
        raise BadInput(f"answer and distractor are the same token ({answer!r})")
    meta = {"prompt_tokens": token_strings(tok, ids), "answer": answer, "distractor": distractor}
    return PromptInput(torch.tensor([ids]), a, d, meta)


@dataclass
class PairsInput:
    """Aligned clean/corrupted prompts [n, pos] with the clean answers and corrupted answers [n],
    the metric's token set, and where they came from."""

    clean: Tensor
    corrupt: Tensor
    answer: Tensor
    distractor: Tensor
    token_set: Tensor | None
    tokens: list[str]
    source: str

    @property
    def args(self) -> tuple:
        return self.clean, self.corrupt, self.answer, self.distractor

    @property
    def meta(self) -> dict[str, Any]:
        return {"prompt_tokens": self.tokens, "n_pairs": int(self.clean.shape[0]), "data": self.source}


def pair_source(clean: str | None = None, corrupt: str | None = None, answer: str | None = None,
                distractor: str | None = None, pairs: str | None = None, task: str | None = None) -> str:
    """Which one source the pairs come from ("typed", "pairs" or "task"); BadInput when there are
    several, none, or a typed pair with a part missing. Checked before any model loads."""
    sources = [s for s, given in (("--clean/--corrupt", clean or corrupt), ("--pairs", pairs), ("--task", task)) if given]
    if len(sources) > 1:
        raise BadInput(f"give one source of prompts: {' or '.join(sources)}, not both")
    if not sources:
        raise BadInput("give --clean, --corrupt, --answer and --distractor, or --pairs FILE, or --task NAME")
    if pairs:
        return "pairs"
    if task:
        return "task"
    missing = [k for k, v in (("clean", clean), ("corrupt", corrupt), ("answer", answer), ("distractor", distractor)) if not v]
    if missing:
        raise BadInput(f"a typed pair needs {', '.join('--' + m for m in sorted(missing))} too")
    return "typed"


def pairs_input(lm, clean: str | None = None, corrupt: str | None = None, answer: str | None = None,
                distractor: str | None = None, pairs: str | None = None, task: str | None = None, n: int = 16,
                seed: int = 0, prepend_bos: bool | None = None, tokens: str | None = None, **_: Any) -> PairsInput:
    """Pairs from exactly one source: a typed pair (clean, corrupt, answer, distractor), a JSONL
    pairs file, or ``n`` pairs of a built-in task. Every prompt must have the first one's token
    length, since patching compares position by position; a task sample keeps the pairs of the
    first pair's length (one template's worth of positions)."""
    import torch

    from analyses.tasks import Pair, task_pairs
    from analyses.tasks.pair_files import read_pairs

    kind = pair_source(clean, corrupt, answer, distractor, pairs, task)
    tok, n_ctx = lm.tokenizer, lm.hooked.shape.n_ctx
    if kind == "pairs":
        items, where, source = read_pairs(pairs), lambda i: f"{pairs}:{items[i].line}: ", f"file {pairs}"
    elif kind == "task":
        length = lambda p: len(encode_prompt(tok, p.clean, prepend_bos, n_ctx))  # noqa: E731
        items, where, source = task_pairs(task, n, seed, same_length=length), lambda i: f"pair {i + 1}: ", f"task {task}"
    else:
        items, where, source = [Pair(clean, corrupt, answer, distractor)], lambda i: "", "one pair"
    rows_clean, rows_corrupt, answers, distractors = [], [], [], []
    for i, p in enumerate(items):
        step(i, len(items), "tokenising pairs")
        try:
            c = encode_prompt(tok, p.clean, prepend_bos, n_ctx)
            r = encode_prompt(tok, p.corrupt, prepend_bos, n_ctx)
            a, d = resolve_token(tok, p.answer), resolve_token(tok, p.distractor)
        except BadInput as e:
            raise BadInput(f"{where(i)}{e}") from None
        if len(c) != len(r):
            raise BadInput(f"{where(i)}clean and corrupt prompts differ in token length ({len(c)} vs {len(r)}): "
                           f"{shown(tok, c)} vs {shown(tok, r)}")
        if rows_clean and len(c) != len(rows_clean[0]):
            raise BadInput(f"{where(i)}all pairs must have the same token length ({len(rows_clean[0])}), got {len(c)}")
        if a == d:
            raise BadInput(f"{where(i)}answer and distractor are the same token ({p.answer!r})")
        rows_clean.append(c), rows_corrupt.append(r), answers.append(a), distractors.append(d)
    token_set = None if not tokens else torch.tensor([resolve_token(tok, t) for t in tokens.split(",")])
    return PairsInput(torch.tensor(rows_clean), torch.tensor(rows_corrupt), torch.tensor(answers),
                      torch.tensor(distractors), token_set, token_strings(tok, rows_clean[0]), source)


def _next_token_probs(lm, ids: list[int]):
    import torch

    with torch.no_grad():
        logits = lm.hooked.run(torch.tensor([ids])).logits[0, -1]
    return torch.softmax(logits.float(), -1)


def token_candidates(lm, prompts: list[str], k: int = 10) -> list[tuple[str, str]]:
    """Tokens to pick an answer or distractor from: the model's top-k next tokens after the first
    prompt, then every other token of the prompts, each as (a spelling that names exactly that
    token, why it is offered). Tokens are told apart by id, so no prediction is dropped because
    its text looks like another's (SentencePiece's ``▁Mary`` and ``Mary``)."""
    import torch

    tok, n_ctx = lm.tokenizer, lm.hooked.shape.n_ctx
    encoded = [encode_prompt(tok, p, None, n_ctx) for p in prompts if p]
    if not encoded:
        raise BadInput("type a prompt first: the tokens to pick from come from it")
    probs = _next_token_probs(lm, encoded[0])
    top = torch.topk(probs, min(k, probs.numel()))
    out: dict[int, str] = {}
    for rank, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        out[i] = f"prediction #{rank}, p = {p:.3f}"
    specials = set(tok.all_special_ids)
    for which, ids in enumerate(encoded):
        name = "prompt" if len(encoded) == 1 else ("first" if which == 0 else "second") + " prompt"
        for pos, i in enumerate(ids):
            if i not in specials:
                out.setdefault(i, f"{name} token {pos}")
    spelled = [(answer_spelling(tok, i), why, i) for i, why in out.items()]
    return [(t, f"{why}  [{visible_tokens(tok, [i])[0]}]" if t.startswith("#") else why) for t, why, i in spelled]


ANSWERS_AFTER = {"prompt": ("answer", "distractor"), "clean": ("answer", "distractor"),
                 "pair_clean": ("pair_answer", "pair_distractor")}


def fit_inputs(lm, inputs: dict[str, Any]) -> dict[str, Any]:
    """Inputs (the forms' defaults: ``analyses.tasks.default_inputs``, or what a form shows) with
    their answer and distractor spelled as single tokens of this model's tokenizer: a default
    written in GPT-2's spelling (``" Mary"``) becomes ``"▁Mary"`` on a SentencePiece model, and
    where the word is no single token there, the model's own likeliest next tokens. Answers that
    already name one token are kept as typed; a prompt the tokenizer refuses is left alone."""
    out = dict(inputs)
    for prompt_key, keys in ANSWERS_AFTER.items():
        prompt, answers = out.get(prompt_key), [out.get(k) for k in keys]
        if not prompt or not any(answers):
            continue
        try:
            ids = encode_prompt(lm.tokenizer, prompt, None, lm.hooked.shape.n_ctx)
        except BadInput:
            continue

        def predict(_text: str, ids: list[int] = ids) -> list[int]:
            return _next_token_probs(lm, ids).argsort(descending=True)[:20].tolist()

        out.update(zip(keys, fit_answers(lm.tokenizer, prompt, answers, predict)))
    return out
