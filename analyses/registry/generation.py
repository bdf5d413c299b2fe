"""Generation and steering vectors: what the model says, with and without the standing edits and
steering; the mean-difference (CAA) vector of two prompt sets; its effect over layer x scale."""

from __future__ import annotations

import math
from typing import Any

from analyses.errors import BadInput
from analyses.registry import Analysis, Param, declare
from analyses.registry._facts import num
from analyses.registry.pairs import PAIRS, _check_pairs
from analyses.registry.prompt import BOS, PROMPT

GENERATE_PARAMS = (
    PROMPT[0],
    Param("max_tokens", "int", "how many tokens to generate at most", default=20, minimum=1, label="max tokens"),
    Param("temperature", "float", "0: greedy (the most likely token); above 0: sample from softmax(logits / T)",
          default=0.0, minimum=0.0),
    Param("top_k", "int", "with sampling: draw from the K most likely tokens only (0: all)", default=0, minimum=0,
          label="top k", when=None),
    Param("sample_seed", "int", "with sampling: the seed (both texts draw with it, so they differ only by the "
          "interventions)", default=0, label="seed"),
    BOS,
)


def run_generate(lm, prompt: str, max_tokens: int, temperature: float, top_k: int, sample_seed: int,
                 prepend_bos: bool | None, progress=None, should_stop=None, on_token=None, edits=()):
    from analyses.edits import edited
    from analyses.generate import Sampling, continuation
    from analyses.inputs import prompt_input
    from analyses.results import Table

    x = prompt_input(lm, prompt, None, None, prepend_bos)
    ids, tok = x.ids[0].tolist(), lm.tokenizer
    n_ctx = lm.hooked.shape.n_ctx
    if n_ctx is not None:  # no more than the model's positions hold (continuation stops there too)
        max_tokens = max(1, min(max_tokens, n_ctx - len(ids)))
    sampling = Sampling(temperature, top_k, sample_seed)
    runs: list[tuple[str, list[int]]] = [("plain", [])] + ([("edited", [])] if edits else [])
    total = max_tokens * len(runs)

    def decode(toks: list[int]) -> str:
        return tok.decode(toks, clean_up_tokenization_spaces=False)

    def seen(i: int):
        def one(token: int, p: float) -> None:
            runs[i][1].append(token)
            if progress is not None:
                progress(i * max_tokens + len(runs[i][1]), total)
            if on_token is not None:
                on_token("\n".join(f"{name:>6}: {decode(t)}" for name, t in runs if t or name == "plain"))
        return one

    args = (lm.hooked, ids, max_tokens, sampling, tok.eos_token_id)
    outs = [continuation(*args, on_token=seen(0), should_stop=should_stop)]
    applied: list[str] = []
    if edits:
        with edited(lm.hooked, edits) as stack:
            applied = stack.texts()
            outs.append(continuation(*args, on_token=seen(1), should_stop=should_stop))
    n = max(len(o.ids) for o in outs)
    columns: dict[str, list[Any]] = {}
    for (name, _), o in zip(runs, outs):
        pad = n - len(o.ids)
        suffix = "" if name == "plain" else f" {name}"
        columns[f"p{suffix}"] = o.probs + [math.nan] * pad
        columns[f"token{suffix}"] = [decode([t]) for t in o.ids] + [""] * pad
    meta = {**x.meta, "continuation": decode(outs[0].ids), "temperature": temperature, "top_k": top_k,
            "sample_seed": sample_seed}
    if edits:
        meta.update(continuation_edited=decode(outs[1].ids), edits=applied)
    return Table("generate", [str(i + 1) for i in range(n)], columns, meta)


def generate_facts(table: Any) -> list[str]:
    meta = table.meta
    facts = [f"plain: {meta['continuation']!r}"]
    if "continuation_edited" in meta:
        facts.append(f"edited: {meta['continuation_edited']!r}")
    return facts


declare(Analysis(
    "generate", "generate", "the model's continuation of a prompt, and beside it the same prompt under the "
    "standing edits and steering", GENERATE_PARAMS, run_generate, "table", "prompt", cancellable=True,
    key=("max_tokens", "temperature"), own_edits=True, streams=True,
    doc="Greedy or sampled, token by token with the key/value (Mamba: state) cache; a row per new token with "
        "its probability. An intervention's position counts in the prompt (@-1: the prompt's last token).",
    headline=generate_facts,
))

# ---- steering vectors -------------------------------------------------------------------------

LAYER = Param("layer", "int", "the layer whose residual stream (blocks.L.hook_resid_pre) the vector is taken at",
              default=0, minimum=0)
HOOK = Param("hook", "text", "or any hook name of width d_model (overrides --layer), e.g. blocks.1.hook_resid_mid",
             metavar="NAME")
VEC_POS = Param("pos", "int", "the position the activations are read at (negative counts from each prompt's end)",
                default=-1, label="position")
POSITIVE = Param("positive", "path", "a text file of prompts, one a line: the vector points toward these "
                 "(with --negative; instead of the pair inputs)", metavar="FILE", label="positive file")
NEGATIVE = Param("negative", "path", "a text file of prompts, one a line: the vector points away from these",
                 metavar="FILE", label="negative file")


def _check_vector(p: dict[str, Any]) -> None:
    if (p.get("positive") is None) != (p.get("negative") is None):
        raise BadInput("--positive and --negative go together: two files of prompts, one a line")
    if p.get("positive") is None:
        _check_pairs(p)


def _read_prompts(path: str, tok, prepend_bos: bool | None, n_ctx: int | None) -> list[list[int]]:
    from analyses.inputs import encode_prompt

    try:
        with open(path, encoding="utf-8") as f:
            lines = [line.rstrip("\n") for line in f if line.strip()]
    except (OSError, UnicodeDecodeError) as e:
        raise BadInput(f"{path}: cannot read it ({e})") from None
    if not lines:
        raise BadInput(f"{path}: no prompts (one a line)")
    return [encode_prompt(tok, line, prepend_bos, n_ctx) for line in lines]


def prompt_sets(lm, positive: str | None, negative: str | None, pair_args: dict[str, Any]):
    """(positive prompts, negative prompts, where they came from): two files, or the clean and the
    corrupted prompts of the pair inputs."""
    if positive is not None:
        tok, n_ctx, bos = lm.tokenizer, lm.hooked.shape.n_ctx, pair_args.get("prepend_bos")
        return (_read_prompts(positive, tok, bos, n_ctx), _read_prompts(negative, tok, bos, n_ctx),
                f"files {positive} vs {negative}")
    from analyses.inputs import pairs_input

    x = pairs_input(lm, **pair_args)
    return x.clean.tolist(), x.corrupt.tolist(), f"{x.source}: clean vs corrupt"


def run_steering_vector(lm, layer: int, hook: str | None, pos: int, positive: str | None, negative: str | None,
                        **pair_args: Any):
    from analyses.results import Table
    from analyses.steering import mean_difference, resid_hook

    name = hook or resid_hook(str(layer), lm.hooked.shape.n_layers)
    if name not in lm.hooked.hook_names():
        raise BadInput(f"{lm.hooked.shape.family} has no hook {name} (see docs/hooks.md)")
    pos_set, neg_set, source = prompt_sets(lm, positive, negative, pair_args)
    v = mean_difference(lm.hooked, pos_set, neg_set, [name], pos)[name]
    if v.shape[0] != lm.hooked.shape.d_model:
        raise BadInput(f"{name} has width {v.shape[0]}, not the residual stream's {lm.hooked.shape.d_model}")
    meta = {"hook": name, "pos": pos, "norm": float(v.norm()), "n_positive": len(pos_set),
            "n_negative": len(neg_set), "source": source}
    return Table("steering-vector", [f"d{i}" for i in range(v.shape[0])], {"value": v.tolist()}, meta)


def vector_facts(table: Any) -> list[str]:
    m = table.meta
    return [f"|v| {num(m['norm'], 4, sign=False)} at {m['hook']} position {m['pos']}",
            f"mean of {m['n_positive']} minus mean of {m['n_negative']} prompts ({m['source']})"]


declare(Analysis(
    "steering-vector", "steering vector", "the mean-difference (CAA) vector of two prompt sets at a hook and position",
    (*PAIRS, LAYER, HOOK, VEC_POS, POSITIVE, NEGATIVE), run_steering_vector, "table", "pairs",
    check=_check_vector, key=("layer", "pos"),
    doc="v = mean(positive) - mean(negative) activation; the clean prompts are the positive set of pair inputs. "
        "Kept in the session: the palette's \"Steering: apply\" adds scale * v at a layer to every run.",
    headline=vector_facts,
))


def run_steering_sweep(lm, layers: str | None, scales: str | None, pos: int, start: int | None,
                       progress=None, should_stop=None, **pair_args: Any):
    from analyses.inputs import pairs_input
    from analyses.metrics import Metric
    from analyses.registry import float_list, int_list
    from analyses.steering import mean_difference, steering_sweep

    model, n = lm.hooked, lm.hooked.shape.n_layers
    chosen = int_list(layers, "--layers") or list(range(n))
    bad = [layer for layer in chosen if not 0 <= layer < n]
    if bad:
        raise BadInput(f"--layers: no layer {bad[0]} (the model has 0..{n - 1})")
    factors = float_list(scales, "--scales") or [-4.0, -2.0, -1.0, 0.0, 1.0, 2.0, 4.0]
    x = pairs_input(lm, **pair_args)
    hooks = {layer: f"blocks.{layer}.hook_resid_pre" for layer in chosen}
    vectors = mean_difference(model, x.clean.tolist(), x.corrupt.tolist(), list(hooks.values()), pos)
    last = _last_positions(x.corrupt)
    metric = Metric(pair_args["metric"], last, x.answer, x.distractor, x.token_set)
    if metric.name == "nld":
        ld = Metric("logit_diff", last, x.answer, x.distractor)
        metric.clean, metric.corrupt = (float(ld(model.run(p).logits)[0]) for p in (x.clean, x.corrupt))
    grid = steering_sweep(model, x.corrupt, metric, {layer: vectors[h] for layer, h in hooks.items()}, factors,
                          start, progress, should_stop)
    grid.meta = {**x.meta, "metric": metric.name, "pos": pos, "start": start, "steered": "corrupt prompts",
                 "norms": {f"L{layer}": float(vectors[h].norm()) for layer, h in hooks.items()}}
    return grid


def _last_positions(ids):
    """The last position of every row of ``ids`` (aligned prompts)."""
    import torch

    return torch.full((ids.shape[0],), ids.shape[1] - 1, dtype=torch.long)


def sweep_facts(grid: Any) -> list[str]:
    best = max(((v, i, j) for i, row in enumerate(grid.values) for j, v in enumerate(row) if math.isfinite(v)),
               default=None)
    if best is None:
        return []
    v, i, j = best
    return [f"largest {grid.meta['metric']} {num(v)} at {grid.labels['layer'][i]} scale {grid.labels['scale'][j]}"]


declare(Analysis(
    "steering-sweep", "steering sweep", "the metric on the corrupted prompts with the clean - corrupt mean "
    "difference added, over layer x scale", (
        *PAIRS,
        Param("layers", "ints", "the layers to steer at, e.g. 0,2 (default: every layer)", metavar="LIST"),
        Param("scales", "floats", "the scales, e.g. -2,0,2 (default -4,-2,-1,0,1,2,4)", metavar="LIST"),
        VEC_POS,
        Param("start", "int", "add the vector from this position on (default: at every position)", label="from"),
    ), run_steering_sweep, "grid", "pairs", cancellable=True, check=_check_pairs, key=("metric", "scales"),
    doc="Each layer's vector is that layer's resid_pre mean difference at --pos; scale 0 is the corrupted run.",
    headline=sweep_facts,
))

