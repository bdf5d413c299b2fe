"""Analyses of one prompt: direct logit attribution, the logit lens, attention patterns."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare, shared
from analyses.registry._facts import num, top_row

PROMPT = shared(
    Param("prompt", "prompt", "the prompt", required=True),
    Param("answer", "token", "the answer token as the tokenizer spells it, e.g. ' Mary'", required=True),
    Param("distractor", "token", "attribute answer - distractor instead"),
)
POS = Param("pos", "int", "position to attribute (0-based; negative counts from the end; default: last)", default=-1,
            label="position")
(BOS,) = shared(Param("prepend_bos", "bos", "prepend the tokenizer's BOS token (default: as the tokenizer does)",
                     label="BOS"))


def run_dla(lm, prompt: str, answer: str, distractor: str | None, by: str, pos: int, prepend_bos: bool | None):
    from analyses.dla import dla
    from analyses.inputs import prompt_input

    x = prompt_input(lm, prompt, answer, distractor, prepend_bos)
    table = dla(lm.hooked, x.ids[0].tolist(), x.answer, x.distractor, by=by, pos=pos)
    table.meta = {**x.meta, **table.meta}
    return table


def run_logit_lens(lm, prompt: str, answer: str, distractor: str | None, pos: int, prepend_bos: bool | None):
    from analyses.dla import logit_lens
    from analyses.inputs import prompt_input

    x = prompt_input(lm, prompt, answer, distractor, prepend_bos)
    decode = lambda i: lm.tokenizer.decode([i], clean_up_tokenization_spaces=False)  # noqa: E731
    table = logit_lens(lm.hooked, x.ids[0].tolist(), x.answer, x.distractor, pos=pos, decode=decode)
    table.meta = {**x.meta, **table.meta}
    return table


def run_attention(lm, prompt: str, layer: int, head: int, prepend_bos: bool | None):
    from analyses.attention import attention_pattern
    from analyses.inputs import prompt_input

    x = prompt_input(lm, prompt, None, None, prepend_bos)
    grid = attention_pattern(lm.hooked, x.ids, layer, head, x.meta["prompt_tokens"])
    grid.meta = {"prompt_tokens": x.meta["prompt_tokens"], **grid.meta}
    return grid


def _target(meta: dict[str, Any]) -> str:
    target = repr(meta.get("answer"))
    return target + (f" - {meta['distractor']!r}" if meta.get("distractor") else "")


def dla_facts(table: Any) -> list[str]:
    """The logit (difference) decomposed, and the component that moves it most."""
    meta = table.meta
    what = "logit diff" if meta.get("distractor") else "logit"
    facts = [f"{what} {_target(meta)} {num(meta.get('logit'), 4)} at position {meta.get('pos')}"]
    top = top_row(table)
    if top is not None:
        facts.append(f"largest component {top[0]} {num(top[1])}")
    return facts


def lens_facts(table: Any) -> list[str]:
    """The final logit, and the first layer after which the answer is the top token."""
    meta = table.meta
    what = "logit diff" if meta.get("distractor") else "logit"
    facts = [f"{what} {_target(meta)} {num(meta.get('logit'), 4)} at position {meta.get('pos')}"]
    ranks = table.columns.get("answer_rank", [])
    first = next((lab for lab, r in zip(table.labels, ranks) if r == 0), None)
    facts.append(f"answer is the top token from {first} on" if first else "answer never the top token")
    return facts


def attention_facts(grid: Any) -> list[str]:
    """Where the last query position attends most."""
    keys = grid.labels[grid.axes[1]]
    last = grid.values[-1]
    j = max(range(len(last)), key=lambda i: last[i])
    return [f"{grid.meta.get('label', '')}: query {grid.labels[grid.axes[0]][-1]} attends most to {keys[j]} "
            f"({num(last[j], sign=False)})"]


declare(Analysis(
    "dla", "DLA", "direct logit attribution", (
        *PROMPT,
        Param("by", "choice", "granularity of the decomposition", default="layer", choices=("layer", "head", "neuron")),
        POS, BOS,
    ), run_dla, "table", "prompt", key=("by", "pos"),
    doc="Rows (embed, heads or layers or neurons, bias) sum to the answer's logit (difference) at the position.",
    headline=dla_facts,
))
declare(Analysis(
    "logit-lens", "logit lens", "residual stream after each layer, unembedded", (*PROMPT, POS, BOS),
    run_logit_lens, "table", "prompt", key=("pos",),
    doc="The answer's logit (difference), rank and the top token after each layer.",
    headline=lens_facts,
))
declare(Analysis(
    "attention", "attention pattern", "which tokens each query position of one head attends to", (
        PROMPT[0],
        Param("layer", "int", "layer (negative counts from the end)", default=0),
        Param("head", "int", "head (query head on GQA models)", default=0),
        BOS,
    ), run_attention, "grid", "prompt", key=("layer", "head"), excludes=("mamba",),
    doc="A query x key heatmap over the prompt's tokens; rows sum to 1.",
    headline=attention_facts,
))
