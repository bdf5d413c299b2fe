"""Erasure (Janiak et al. 2023, "an adversarial example for DLA"): a writer's direct logit
attribution is large while later heads erase what it wrote. Every analysis here averages over a
prompt set (a corpus file or a task's prompts, ``registry.corpus.CORPUS``) and streams it in
batches with progress and cancel. The numbers: ``analyses.erasure``; the definitions:
docs/erasure.md."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare, names_list
from analyses.registry._facts import names, num
from analyses.registry.corpus import CORPUS, check_corpus
from analyses.registry.defaults import toy_writer

WRITER = Param("writer", "text", "the writer whose output is tracked: a head L{l}H{h} or an MLP L{l}MLP (a "
               "trained erasure toy's own writer by default)", default="L0H0", metavar="NODE", model_default=toy_writer)
START = Param("start", "int", "skip the first positions of every text", default=0, minimum=0)
LAST = Param("last", "flag", "measure only the position before each text's last token (a task's answer position)")
FOLD = Param("fold", "choice", "which outputs: raw = as the model computes them (the default: the numbers the other "
             "analyses give); tl = as TransformerLens's from_pretrained processes the weights, the paper's setting "
             "(outputs centred, value bias folded out, W_U centred over the vocabulary)", default="raw",
             choices=("raw", "tl"))
THRESHOLD = Param("threshold", "float", "a head or MLP after the writer is an eraser when its median PR is below "
                  "minus this", default=0.05, minimum=0)


def _prompts(p: dict[str, Any]):
    from analyses.corpus import PromptSet

    return PromptSet(p.pop("corpus"), p.pop("task"), p.pop("n"), p.pop("seed"), p.pop("batch"), p.pop("prepend_bos"))


def _check(p: dict[str, Any]) -> None:
    """One source of texts and a well-formed writer, before the model loads."""
    from analyses.erasure.ratios import check_band
    from analyses.labels import parse_node

    check_corpus(p)
    if "writer" in p:
        parse_node(p["writer"])
    for e in names_list(p.get("erasers")):
        parse_node(e)
    check_band(p.get("band", 0))


def _texts(m: dict[str, Any]) -> str:
    partial = ", PARTIAL: stopped early" if m.get("partial") else ""
    fold = f", fold {m['fold']}" if "fold" in m else ""
    return f"{m.get('texts')} texts ({m.get('data')}), {m.get('points', m.get('points_total'))} points{fold}{partial}"


def pr_facts(result: Any) -> list[str]:
    """The writer, the erasers flagged and their summed projection ratio."""
    m = result.meta
    return [f"writer {m.get('writer')}: erasers {names(m.get('erasers', []))} (summed median PR "
            f"{num(m.get('erasers_sum'))}; band {num(m.get('band'), 0, sign=False)}%, threshold "
            f"{num(m.get('threshold'), 2, sign=False)})", _texts(m)]


def scatter_facts(scatter: Any) -> list[str]:
    """The fit of the erasers' DLA on the writer's, and who the erasers are."""
    m, fit = scatter.meta, scatter.fit()
    return [f"fit r = {num(fit['r'])}, slope {num(fit['slope'])} ± {num(fit['slope_se'], sign=False)}, "
            f"n = {fit['n']}",
            f"writer {m.get('writer')}, erasers {names(m.get('erasers', []))} ({m.get('mode')}); {_texts(m)}"]


def causal_facts(table: Any) -> list[str]:
    """The writer removed from a layer's value input: the true token's logit before and after."""
    m = table.meta
    return [f"{m.get('writer')} removed from layer {m.get('layer')}'s value input: logit "
            f"{num(m.get('logit_before'))} -> {num(m.get('logit_after'))} (writer DLA {num(m.get('writer_dla'))})",
            _texts(m)]


def effect_facts(table: Any) -> list[str]:
    """The components whose DLA misleads about their total effect."""
    m = table.meta
    return [f"flagged (DLA and total effect differ in sign or by over {num(m.get('factor'), 1, sign=False)}x): "
            f"{names(m.get('flagged', []))}", _texts(m)]


def prompts_facts(table: Any) -> list[str]:
    """The best adversarial prefix and the tokens the writer favours."""
    m = table.meta
    tokens = names([repr(t["token"]) for t in m.get("top_tokens", [])], 5)
    best = f"top prefix {table.labels[0]!r} (score {num(table.values[0])})" if table.labels else "no prefix found"
    return [f"writer {m.get('writer')} favours {tokens}; {best}", _texts(m)]


def run_pr(lm, progress=None, should_stop=None, **p):
    from analyses.erasure import projection_ratios

    prompts = _prompts(p)
    return projection_ratios(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)[0]


def run_stream(lm, progress=None, should_stop=None, **p):
    from analyses.erasure import projection_ratios

    prompts = _prompts(p)
    return projection_ratios(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)[1]


def run_scatter(lm, progress=None, should_stop=None, **p):
    from analyses.erasure import writer_eraser_scatter

    prompts = _prompts(p)
    p["erasers"] = names_list(p["erasers"]) or None
    return writer_eraser_scatter(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


def run_causal(lm, progress=None, should_stop=None, **p):
    from analyses.erasure import causal_check

    prompts = _prompts(p)
    p["layer"] = p.pop("value_layer")
    return causal_check(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


def run_effect(lm, progress=None, should_stop=None, **p):
    from analyses.erasure import dla_vs_effect

    prompts = _prompts(p)
    return dla_vs_effect(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


def run_prompts(lm, progress=None, should_stop=None, **p):
    from analyses.erasure import adversarial_prompts

    prompts = _prompts(p)
    p["limit"] = p.pop("prompts")
    return adversarial_prompts(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


PR_PARAMS = (*CORPUS, WRITER, START, LAST, FOLD,
             Param("band", "float", "width of the percentile band around the median, in percent", default=75.0,
                   minimum=0),
             THRESHOLD)
MAMBA = ("mamba",)

declare(Analysis(
    "erasure-pr", "erasure: projection ratios", "projection ratio PR(a, w) = a.w/|w|^2 of every head, MLP and "
    "residual point onto a writer's output w, over a prompt set", PR_PARAMS, run_pr, "table", "model",
    cancellable=True, check=_check, key=("writer", "task", "corpus"), excludes=MAMBA,
    headline=pr_facts,
    doc="Median and a percentile band per component over texts x positions; heads and MLPs after the writer with "
        "median PR below -threshold are flagged as erasers (PR -1: the writer's direction fully removed).",
))
declare(Analysis(
    "erasure-stream", "erasure: PR along the stream", "PR of the residual stream onto a writer's output after each "
    "sublayer", PR_PARAMS, run_stream, "series", "model", cancellable=True, check=_check,
    key=("writer", "task", "corpus"), excludes=MAMBA,
    headline=pr_facts,
    doc="Median and band of PR(resid, w) at resid_pre/mid/post of every layer, in forward order: 1 once written, "
        "falling where it is erased.",
))
declare(Analysis(
    "erasure-scatter", "erasure: writer vs erasers", "writer's DLA toward the true next token against the erasers' "
    "DLA, with Pearson r and the OLS slope", (
        *CORPUS, WRITER,
        Param("erasers", "nodes", "the eraser heads (default: every head after the writer with median PR below "
              "-threshold)", metavar="NODES"),
        Param("mode", "choice", "ov: the writer's output through the erasers' OV circuits (norm at its cached scale, "
              "no attention); actual: the erasers' summed output", default="ov", choices=("ov", "actual")),
        START, LAST, THRESHOLD, FOLD,
        Param("points", "int", "at most this many points, evenly spaced (the fit is over them)", default=5000,
              minimum=2),
    ), run_scatter, "scatter", "model", cancellable=True, check=_check, key=("writer", "mode", "erasers"),
    excludes=MAMBA,
    headline=scatter_facts,
    doc="The paper's r = -0.70, slope -0.61 on GELU-4L: erasers remove about 61% of the writer's direct effect.",
))
declare(Analysis(
    "erasure-causal", "erasure: causal check", "remove a writer's output from a later layer's value input (norm "
    "scale frozen, q and k untouched) and re-measure PR and DLA", (
        *CORPUS, WRITER,
        Param("value_layer", "int", "the layer whose heads' value input loses the writer (default: the writer's + 1)",
              minimum=0, label="value layer"),
        START, LAST, FOLD,
    ), run_causal, "table", "model", cancellable=True, check=_check, key=("writer", "value_layer"), excludes=MAMBA,
    headline=causal_facts,
    doc="Per component: median PR onto the writer and mean DLA toward the true next token, before and after; "
        "erasers' PR goes to about 0 and the stream keeps the writer's direction.",
))
declare(Analysis(
    "erasure-effect", "erasure: DLA vs total effect", "per head and MLP: DLA toward the true next token next to its "
    "resample-ablation effect on that logit", (
        *CORPUS,
        Param("factor", "float", "flag a component whose DLA and effect differ by more than this factor", default=2.0,
              minimum=1),
        Param("floor", "float", "ignore components whose DLA and effect are both below this (logits)", default=0.05,
              minimum=0),
        START, LAST, FOLD,
    ), run_effect, "table", "model", cancellable=True, check=_check, key=("factor", "task", "corpus"),
    excludes=MAMBA,
    headline=effect_facts,
    doc="Effect = clean logit minus the logit with the component's output taken from another text of the batch; "
        "flag: sign (they disagree in sign) or factor.",
))
declare(Analysis(
    "erasure-prompts", "erasure: adversarial prompts", "prefixes whose true next token the writer's DLA favours "
    "while its total effect is small or opposite", (
        *CORPUS, WRITER,
        Param("k", "int", "tokens with the writer's largest mean DLA to look for", default=20, minimum=1),
        Param("prompts", "int", "prefixes to list", default=20, minimum=1),
        START, LAST, FOLD,
    ), run_prompts, "table", "model", cancellable=True, check=_check, key=("writer", "k"), excludes=MAMBA,
    headline=prompts_facts,
    doc="Ranked by score = writer DLA - resample-ablation effect; meta lists the top tokens by mean DLA.",
))


def verdict_facts(table: Any) -> list[str]:
    """The set's verdict with its three numbers, and the heads a PR threshold alone would mislead on."""
    m = table.meta
    return [f"{m.get('set_verdict')}: set {names(m.get('set', []))} summed PR {num(m.get('set_pr'))}, scatter r "
            f"{num(m.get('set_r'))} (slope {num(m.get('set_slope'))}), stream {m.get('stream')} PR "
            f"{num(m.get('stream_before'))} -> {num(m.get('stream_after'))} without the writer in later values",
            f"erasers by all three checks: {names(m.get('erasers', []))}; flagged by PR only: "
            f"{names(m.get('misleading', []))}", _texts(m)]


def run_verdict(lm, progress=None, should_stop=None, **p):
    from analyses.erasure.verdict import eraser_verdict

    prompts = _prompts(p)
    return eraser_verdict(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


declare(Analysis(
    "erasure-verdict", "erasure: eraser verdict", "median PR, the OV scatter and the causal check of every head "
    "after the writer, side by side, per head and for the erasers as a set", (
        *CORPUS, WRITER, START, LAST, THRESHOLD,
        Param("r_max", "float", "a head (or the set) passes the scatter check when r is at most this", default=-0.5,
              label="r at most"),
        Param("restore", "float", "the set passes the causal check when at least this share of the stream's lost PR "
              "comes back", default=0.3, minimum=0),
        FOLD,
    ), run_verdict, "table", "model", cancellable=True, check=_check, key=("writer", "fold"), excludes=MAMBA,
    headline=verdict_facts,
    doc="Per head: pr, pr_after (writer removed from every later layer's values), r and slope of its OV image's "
        "DLA on the writer's; verdict eraser only when all three agree. The set (every later head with median PR "
        "below -0.01) is judged on summed PR, the summed scatter and how much of the stream's PR comes back.",
))


def modified_facts(table: Any) -> list[str]:
    """The writer's DLA against what is left of it at the end of the stream."""
    m = table.meta
    return [f"{m.get('writer')} DLA {num(m.get('writer_dla'))}; modified DLA at {m.get('stream')} "
            f"{num(m.get('modified_dla'))} (the part of the writer still in the stream)", _texts(m)]


def input_facts(table: Any) -> list[str]:
    """The writer's DLA with its own input resampled, and the component that lost most."""
    m = table.meta
    drops = [(v, lab) for lab, v in zip(table.labels, table.columns["change"]) if lab != m.get("writer")]
    most = min(drops) if drops else (float("nan"), "none")
    return [f"{m.get('writer')} DLA {num(m.get('writer_dla'))} -> {num(m.get('writer_dla_after'))} with its input "
            f"resampled; largest drop {most[1]} {num(most[0])}", _texts(m)]


def importance_facts(table: Any) -> list[str]:
    """The most important component of the layer by median loss increase, and the clean loss."""
    m = table.meta
    i = table.labels.index(m["most"]) if m.get("most") in table.labels else 0
    rise = num(table.values[i], sign=False)
    return [f"layer {m.get('layer')}: most important {m.get('most')} (median loss +{rise}); "
            f"clean median loss {num(m.get('clean_loss_median'), sign=False)}", _texts(m)]


def run_modified(lm, progress=None, should_stop=None, **p):
    from analyses.erasure.experiments import modified_dla

    prompts = _prompts(p)
    return modified_dla(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


def run_input(lm, progress=None, should_stop=None, **p):
    from analyses.erasure.experiments import input_resample

    prompts = _prompts(p)
    return input_resample(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


def run_importance(lm, progress=None, should_stop=None, **p):
    from analyses.erasure.experiments import layer_importance

    prompts = _prompts(p)
    return layer_importance(lm.hooked, lm.tokenizer, prompts, progress=progress, should_stop=should_stop, **p)


declare(Analysis(
    "erasure-modified", "erasure: modified DLA", "the writer's DLA against the DLA of the part of it still in the "
    "stream at each residual point (PR x DLA; the paper's E1.4c)", (*CORPUS, WRITER, START, LAST, FOLD),
    run_modified, "table", "model", cancellable=True, check=_check, key=("writer", "fold"), excludes=MAMBA,
    headline=modified_facts,
    doc="Per residual point from the writer's layer on: mean of PR(resid, w) x DLA(w) toward the true next token, "
        "the writer's own DLA, and their ratio; the last row is the paper's modified DLA (GELU-4L: 0.27 -> 0.02).",
))
declare(Analysis(
    "erasure-input", "erasure: resample the writer's input", "the writer head's input (q, k, v) at each position "
    "taken from the next text; every component's DLA before and after (the paper's fig. 4)",
    (*CORPUS, WRITER, START, LAST, FOLD), run_input, "table", "model", cancellable=True, check=_check,
    key=("writer", "fold"), excludes=MAMBA, headline=input_facts,
    doc="One forward per position. A writer whose write does not depend on its context keeps its DLA; heads that "
        "build on the context lose theirs (GELU-4L: L0H2 stays, L3H1 1.14 -> 0.09).",
))
declare(Analysis(
    "erasure-importance", "erasure: loss importance of a layer", "each head and MLP of a layer resample-ablated in "
    "turn: the true next token's loss increase per point (the paper's E1.6)", (
        *CORPUS,
        Param("layer", "int", "the layer whose components are ablated", default=0, minimum=0),
        Param("band", "float", "width of the percentile band around the median, in percent", default=75.0,
              minimum=0),
        START, LAST,
    ), run_importance, "table", "model", cancellable=True, check=_check, key=("layer", "task", "corpus"),
    excludes=MAMBA, headline=importance_facts,
    doc="Median, band and mean of the loss increase; no --fold (the loss does not depend on how the weights are "
        "parameterised). GELU-4L: clean median loss 2.25, L0H5 +0.43, the writer L0H2 about +0.02.",
))
