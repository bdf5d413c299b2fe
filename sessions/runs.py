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


def encode_pairs(
    loaded: LoadedModel,
    clean: str | None = None,
    corrupt: str | None = None,
    answer: str | None = None,
    distractor: str | None = None,
    pairs: str | None = None,
    prepend_bos: bool | None = None,
    tokens: str | None = None,
) -> dict[str, Any]:
    """Token tensors for one clean/corrupt pair or a pair file (and the metric's token set, a
    comma list); every prompt must have the same token length, since patching compares position
    by position."""
    import torch

    from analyses.tasks import Pair
    from analyses.tasks.pair_files import read_pairs

    if pairs is not None:
        items = read_pairs(pairs)
    elif clean is None or corrupt is None or answer is None or distractor is None:
        raise BadInput("give --clean, --corrupt, --answer and --distractor, or --pairs FILE")
    else:
        items = [Pair(clean, corrupt, answer, distractor)]
    tok, n_ctx = loaded.tokenizer, loaded.hooked.shape.n_ctx
    rows_clean, rows_corrupt, answers, distractors = [], [], [], []
    for i, p in enumerate(items, 1):
        c = encode_prompt(tok, p.clean, prepend_bos, n_ctx)
        r = encode_prompt(tok, p.corrupt, prepend_bos, n_ctx)
        where = f"pair {i}: " if pairs is not None else ""
        if len(c) != len(r):
            raise BadInput(
                f"{where}clean and corrupt prompts differ in token length ({len(c)} vs {len(r)}): "
                f"{token_strings(tok, c)} vs {token_strings(tok, r)}"
            )
        if rows_clean and len(c) != len(rows_clean[0]):
            raise BadInput(f"{where}all pairs must have the same token length ({len(rows_clean[0])}), got {len(c)}")
        a, d = resolve_token(tok, p.answer), resolve_token(tok, p.distractor)
        if a == d:
            raise BadInput(f"{where}answer and distractor are the same token ({p.answer!r})")
        rows_clean.append(c), rows_corrupt.append(r), answers.append(a), distractors.append(d)
    return {
        "clean": torch.tensor(rows_clean),
        "corrupt": torch.tensor(rows_corrupt),
        "answer": torch.tensor(answers),
        "distractor": torch.tensor(distractors),
        "tokens": token_strings(tok, rows_clean[0]),
        "n_pairs": len(items),
        "token_set": None if not tokens else torch.tensor([resolve_token(tok, t) for t in tokens.split(",")]),
    }


def run_patch(
    loaded: LoadedModel,
    site: str,
    metric: str = "logit_diff",
    direction: str = "denoise",
    all_pos: bool = False,
    positions: str | None = None,
    heads: str | None = None,
    progress=None,
    should_stop=None,
    **pair_args: Any,
):
    """An activation-patching sweep; ``positions`` / ``heads`` are comma lists ("9,-1") that
    restrict it to those cells."""
    from analyses.patching import activation_patching

    enc = encode_pairs(loaded, **pair_args)
    grid = activation_patching(
        loaded.hooked, enc["clean"], enc["corrupt"], enc["answer"], enc["distractor"], site,
        metric=metric, method=direction, by_pos=not all_pos, progress=progress, should_stop=should_stop,
        token_labels=enc["tokens"], token_set=enc["token_set"],
        positions=int_list(positions, "positions"), heads=int_list(heads, "heads"),
    )
    grid.meta = {"prompt_tokens": enc["tokens"], "n_pairs": enc["n_pairs"], **grid.meta}
    return grid


def int_list(text: str | None, what: str) -> list[int] | None:
    """ "9, -1" -> [9, -1]; None or blank -> None (everything)."""
    if text is None or not text.strip():
        return None
    try:
        return [int(x) for x in text.split(",") if x.strip()]
    except ValueError:
        raise BadInput(f"{what}: give whole numbers separated by commas, like 9,-1 (got {text!r})") from None


def run_attrib(loaded: LoadedModel, site: str, metric: str = "logit_diff", all_pos: bool = False, **pair_args: Any):
    from analyses.attribution import attribution_patching

    enc = encode_pairs(loaded, **pair_args)
    (grid,) = attribution_patching(
        loaded.hooked, enc["clean"], enc["corrupt"], enc["answer"], enc["distractor"], [site],
        metric=metric, by_pos=not all_pos, token_labels=enc["tokens"], token_set=enc["token_set"],
    )
    grid.meta = {"prompt_tokens": enc["tokens"], "n_pairs": enc["n_pairs"], **grid.meta}
    return grid


def run_eap(
    loaded: LoadedModel,
    ig: int = 0,
    positional: bool = False,
    top: int | None = None,
    metric: str = "logit_diff",
    threshold: float | None = None,
    progress=None,
    should_stop=None,
    **pair_args: Any,
) -> Table:
    """Edge scores, largest magnitude first; with ``top``, the faithfulness of those edges alone,
    measured by running the model with every other edge corrupted."""
    from analyses.attribution import EdgeGraph, edge_attribution, faithfulness, select_edges

    enc = encode_pairs(loaded, **pair_args)
    args = (loaded.hooked, enc["clean"], enc["corrupt"], enc["answer"], enc["distractor"])
    table = edge_attribution(*args, metric=metric, ig_steps=ig, positional=positional, token_labels=enc["tokens"],
                             token_set=enc["token_set"], progress=progress, should_stop=should_stop)
    meta = {"prompt_tokens": enc["tokens"], "n_pairs": enc["n_pairs"], **table.meta}
    if top is not None or threshold is not None:
        if top is not None and top <= 0:
            raise BadInput("--top must be positive")
        keep = select_edges(table, EdgeGraph(loaded.hooked), top=top, threshold=threshold)
        meta["circuit"] = faithfulness(*args, keep, metric=metric, token_set=enc["token_set"])
    order = table.top(len(table.labels))
    return Table(
        "eap", [table.labels[i] for i in order], {c: [v[i] for i in order] for c, v in table.columns.items()}, meta
    )


def run_path_patch(
    loaded: LoadedModel, senders: str, receivers: str, metric: str = "logit_diff", **pair_args: Any
) -> Table:
    from analyses.attribution import path_patching

    enc = encode_pairs(loaded, **pair_args)
    split = lambda s: [x.strip() for x in s.split(",") if x.strip()]  # noqa: E731
    out = path_patching(loaded.hooked, enc["clean"], enc["corrupt"], enc["answer"], enc["distractor"],
                        split(senders), split(receivers), metric=metric, token_set=enc["token_set"])
    meta = {"prompt_tokens": enc["tokens"], "n_pairs": enc["n_pairs"], "metric": metric, "senders": split(senders),
            "receivers": split(receivers), "edges": out["edges"]}
    return Table("path_patch", ["clean", "corrupt", "patched"], {"value": [out["clean"], out["corrupt"], out["patched"]]}, meta)


ANALYSES: dict[str, Callable[..., Any]] = {
    "attrib": run_attrib,
    "eap": run_eap,
    "path-patch": run_path_patch,
    "dla": run_dla,
    "logit-lens": run_logit_lens,
    "eval": run_eval,
    "patch": run_patch,
}


def run_analysis(loaded: LoadedModel, name: str, **params: Any):
    if name not in ANALYSES:
        raise BadInput(f"unknown analysis {name!r}; available: {', '.join(ANALYSES)}")
    return ANALYSES[name](loaded, **params)


def token_candidates(loaded: LoadedModel, prompts: list[str], k: int = 10) -> list[tuple[str, str]]:
    """Tokens to pick an answer or distractor from: the model's top-k next tokens after the first
    prompt, then every distinct token of the prompts, each as (spelling, why it is offered)."""
    import torch

    tok, n_ctx = loaded.tokenizer, loaded.hooked.shape.n_ctx
    encoded = [encode_prompt(tok, p, None, n_ctx) for p in prompts if p]
    if not encoded:
        raise BadInput("type a prompt first: the tokens to pick from come from it")
    with torch.no_grad():
        logits = loaded.hooked.run(torch.tensor([encoded[0]])).logits[0, -1]
    probs = torch.softmax(logits.float(), -1)
    top = torch.topk(probs, min(k, probs.numel()))
    out: dict[str, str] = {}
    for rank, (p, i) in enumerate(zip(top.values.tolist(), top.indices.tolist()), 1):
        out.setdefault(token_strings(tok, [i])[0], f"prediction #{rank}, p = {p:.3f}")
    specials = set(tok.all_special_ids)
    for which, ids in enumerate(encoded):
        for pos, (i, spelled) in enumerate(zip(ids, token_strings(tok, ids))):
            if i not in specials:
                out.setdefault(spelled, f"{'clean' if which == 0 and len(encoded) > 1 else 'corrupt' if which else 'prompt'} token {pos}")
    return list(out.items())
