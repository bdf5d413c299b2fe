"""Analyses of clean/corrupted pairs (one typed pair, a pairs file, or a built-in task's sample):
activation patching, attribution patching, edge attribution patching and path patching."""

from __future__ import annotations

from typing import Any

from analyses.errors import BadInput
from analyses.registry import Analysis, Param, declare, int_list, names_list, shared
from analyses.registry.defaults import preferred_site
from analyses.registry._facts import baselines, data_source, grid_extreme, names, num, rate, top_row
from analyses.tasks.ioi_patterns import PATTERNS

PAIRS = shared(
    Param("clean", "prompt", "clean prompt"),
    Param("corrupt", "prompt", "corrupted prompt (same token length)"),
    Param("answer", "token", "the clean prompt's answer token", label="clean ans."),
    Param("distractor", "token", "the corrupted prompt's answer token", label="corrupt ans."),
    Param("pairs", "path", "JSONL file of {clean, corrupt, answer, distractor} (aligned prompts)", metavar="FILE",
          label="pairs file"),
    Param("task", "task", "or N pairs of a built-in task, all of one token length (default: the model's own, when "
          "no pair or file is given)", metavar="NAME", choices=("ioi", "ioi-abc", *PATTERNS, "ioi-marked")),
    Param("n", "int", "with --task: how many pairs (default 16)", default=16, minimum=1),
    Param("seed", "int", "with --task: the sample's seed", default=0),
    Param("metric", "choice", "nld: normalized logit difference; tokens: total probability of --tokens",
          default="logit_diff", choices=("logit_diff", "nld", "prob", "tokens")),
    Param("tokens", "text", "comma list of tokens for --metric tokens, e.g. ' Mary, John'", when=("metric", "tokens")),
    Param("prepend_bos", "bos", "prepend the tokenizer's BOS token (default: as the tokenizer does)", label="BOS"),
)
SITE = Param("site", "site", "resid_pre | attn_out | mlp_out | head_out | head_q | head_k | head_v | head_pattern; "
             "Mamba: resid_pre | layer_in | out_proj | conv | ssm_in (default: head_out; Mamba: out_proj)",
             model_default=preferred_site)
ALL_POS = Param("all_pos", "flag", "patch all positions at once (grid over layers)", label="all positions")
PAIR_NAMES = {p.name for p in PAIRS}
HEAD_SITES = ("head_out", "head_q", "head_k", "head_v", "head_pattern")  # the sites with a head axis (none on Mamba)


def _split(params: dict[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
    """(the pair inputs, the analysis's own parameters)."""
    return ({k: v for k, v in params.items() if k in PAIR_NAMES},
            {k: v for k, v in params.items() if k not in PAIR_NAMES})


def _check_pairs(p: dict[str, Any]) -> None:
    from analyses.inputs import pair_source

    pair_source(*(p.get(k) for k in ("clean", "corrupt", "answer", "distractor", "pairs", "task")))
    if p.get("metric") == "tokens" and not p.get("tokens"):
        raise BadInput("--metric tokens needs a token set: --tokens A,B")


def run_patch(lm, site: str, direction: str, all_pos: bool, positions: str | None, heads: str | None,
              progress=None, should_stop=None, **pair_args: Any):
    from analyses.inputs import pairs_input
    from analyses.patching import activation_patching

    x = pairs_input(lm, **pair_args)
    grid = activation_patching(
        lm.hooked, *x.args, site, metric=pair_args["metric"], method=direction, by_pos=not all_pos,
        progress=progress, should_stop=should_stop, token_labels=x.tokens, token_set=x.token_set,
        positions=int_list(positions, "--positions"), heads=int_list(heads, "--heads"),
    )
    grid.meta = {**x.meta, **grid.meta}
    return grid


def run_attrib(lm, site: str, all_pos: bool, **pair_args: Any):
    from analyses.attribution import attribution_patching
    from analyses.inputs import pairs_input

    x = pairs_input(lm, **pair_args)
    (grid,) = attribution_patching(lm.hooked, *x.args, [site], metric=pair_args["metric"], by_pos=not all_pos,
                                   token_labels=x.tokens, token_set=x.token_set)
    grid.meta = {**x.meta, **grid.meta}
    return grid


def _edge_scores(lm, x, ig: int | None, positional: bool, metric: str, progress, should_stop):
    from analyses.attribution import edge_attribution

    return edge_attribution(lm.hooked, *x.args, metric=metric, ig_steps=ig or 0, positional=positional,
                            token_labels=x.tokens, token_set=x.token_set, progress=progress, should_stop=should_stop)


def run_eap(lm, ig: int | None, positional: bool, top: int | None, threshold: float | None, prune: bool,
            progress=None, should_stop=None, **pair_args: Any):
    """Edge scores, largest magnitude first; with ``top`` or ``threshold``, the faithfulness of
    those edges alone, measured by running the model with every other edge corrupted."""
    from analyses.attribution import EdgeGraph, faithfulness, select_edges
    from analyses.inputs import pairs_input
    from analyses.results import Table

    x = pairs_input(lm, **pair_args)
    metric = pair_args["metric"]
    table = _edge_scores(lm, x, ig, positional, metric, progress, should_stop)
    meta = {**x.meta, **table.meta}
    if top is not None or threshold is not None:
        keep = select_edges(table, EdgeGraph(lm.hooked), top=top, threshold=threshold, prune=prune)
        meta["circuit"] = faithfulness(lm.hooked, *x.args, keep, metric=metric, token_set=x.token_set)
    order = table.top(len(table.labels))
    return Table("eap", [table.labels[i] for i in order], {c: [v[i] for i in order] for c, v in table.columns.items()},
                 meta)


def run_eap_curve(lm, ig: int | None, ks: str | None, progress=None, should_stop=None, **pair_args: Any):
    """Faithfulness of the top-k EAP edges for a range of k, as they are and pruned to the edges
    on a path from the input to the logits: why a small k can score 0."""
    from analyses.attribution import default_ks, faithfulness_curve
    from analyses.inputs import pairs_input
    from analyses.results import Series

    x = pairs_input(lm, **pair_args)
    metric = pair_args["metric"]
    table = _edge_scores(lm, x, ig, False, metric, progress, should_stop)
    chosen = int_list(ks, "--ks") or default_ks(len(table.labels))
    curves = {prune: faithfulness_curve(lm.hooked, *x.args, table, chosen, prune=prune, metric=metric,
                                        token_set=x.token_set, should_stop=should_stop) for prune in (False, True)}
    lines = {"faithfulness": [c["faithfulness"] for c in curves[False]],
             "faithfulness (pruned)": [c["faithfulness"] for c in curves[True]],
             "edges kept (pruned)": [float(c["edges_kept"]) for c in curves[True]]}
    meta = {**x.meta, "metric": metric, "method": "EAP-IG" if ig else "EAP", "edges_total": len(table.labels),
            "clean": curves[False][0]["clean"], "corrupt": curves[False][0]["corrupt"],
            "top_edges": [table.labels[i] for i in table.top(10)]}
    return Series("eap_curve", chosen, lines, "k", meta)


def run_path_patch(lm, senders: str, receivers: str, **pair_args: Any):
    from analyses.attribution import path_patching
    from analyses.inputs import pairs_input
    from analyses.results import Table

    x = pairs_input(lm, **pair_args)
    out = path_patching(lm.hooked, *x.args, names_list(senders), names_list(receivers), metric=pair_args["metric"],
                        token_set=x.token_set)
    meta = {**x.meta, "metric": pair_args["metric"], "senders": names_list(senders),
            "receivers": names_list(receivers), "edges": out["edges"]}
    return Table("path_patch", ["clean", "corrupt", "patched"], {"value": [out["clean"], out["corrupt"], out["patched"]]},
                 meta)


def _check_patch(p: dict[str, Any]) -> None:
    _check_pairs(p)
    if p["all_pos"] and p["positions"]:
        raise BadInput("--positions chooses positions of a per-position sweep; it cannot go with --all-pos")


def _check_eap(p: dict[str, Any]) -> None:
    _check_pairs(p)
    if p["top"] is not None and p["threshold"] is not None:
        raise BadInput("give --top K or --threshold T, not both")
    if p["prune"] and p["top"] is None and p["threshold"] is None:
        raise BadInput("--prune prunes the circuit of --top K or --threshold T; give one of them")


def patch_facts(grid: Any) -> list[str]:
    """The metric's two ends, the data, and the cell that moves it most from the run it patches
    into: the corrupted run when denoising, the clean one for noising and ablations (patch,
    attribution and conv slices alike)."""
    meta = grid.meta
    method = meta.get("method")
    if "site" in meta:
        where = f"site {meta['site']}" + (f" ({method})" if method else "") + ", "
    else:
        where = f"{method} patching, " if method else ""
    facts = [f"{where}{baselines(meta)} over {data_source(meta)}"]
    base = "clean" if method in ("noise", "resample", "mean") else "corrupt"
    value = meta.get(base)
    cell = grid_extreme(grid, value if isinstance(value, (int, float)) else 0.0)
    if cell is not None:
        facts.append(f"largest change from {base}: {cell[0]} {num(cell[1])}")
    if meta.get("partial"):
        facts.append(f"PARTIAL: {meta.get('cells_done')} of {meta.get('cells_total')} cells")
    return facts


def eap_facts(table: Any) -> list[str]:
    """The edge graph, its strongest edge and, when kept edges were asked for, the circuit."""
    meta = table.meta
    facts = [f"{meta.get('method', 'EAP')} on {data_source(meta)}: {len(table.labels)} edges "
             f"({meta.get('n_writers')} writers x {meta.get('n_readers')} readers); {baselines(meta)}"]
    top = top_row(table)
    if top is not None:
        facts.append(f"strongest edge {top[0]} {num(top[1])}")
    if "circuit" in meta:
        c = meta["circuit"]
        facts.append(f"circuit {c['edges_kept']} of {c['edges_total']} edges: faithfulness {num(c['faithfulness'])} "
                     f"(metric {num(c['circuit'])})")
    return facts


def eap_curve_facts(series: Any) -> list[str]:
    """Faithfulness at the largest k measured, raw and pruned, and the top edges."""
    meta, lines = series.meta, series.lines
    k = series.x[-1] if series.x else None
    facts = [f"{meta.get('method', 'EAP')} on {data_source(meta)}: {meta.get('edges_total')} edges; "
             f"{baselines(meta)}"]
    if k is not None:
        kept = num(lines["edges kept (pruned)"][-1], kind="count")
        facts.append(f"top {k} edges: faithfulness {num(lines['faithfulness'][-1])}, pruned "
                     f"{num(lines['faithfulness (pruned)'][-1])} ({kept} edges kept)")
    facts.append(f"top edges {names(meta.get('top_edges', []), 5)}")
    return facts


def path_patch_facts(table: Any) -> list[str]:
    """The patched metric between its two ends, and the share of the gap it recovers."""
    meta = table.meta
    clean, corrupt, patched = table.values
    gap = clean - corrupt
    share = f", {rate((patched - corrupt) / gap)} of the clean - corrupt gap" if gap else ""
    return [f"{names(meta.get('senders', []))} -> {names(meta.get('receivers', []))} "
            f"({num(meta.get('edges'), kind='count')} edge{'s' * (meta.get('edges') != 1)}) on {data_source(meta)}",
            f"patched {num(patched)} (clean {num(clean)}, corrupt {num(corrupt)}){share}"]


IG = Param("ig", "int", "EAP-IG with this many interpolation steps (at least 1)", minimum=1, metavar="STEPS",
           label="IG steps")
declare(Analysis(
    "patch", "activation patching", "activation patching sweep over layer x position (x head)", (
        *PAIRS, SITE,
        Param("direction", "choice", "denoise: clean into corrupted; noise: the reverse; resample / mean: ablation",
              default="denoise", choices=("denoise", "noise", "resample", "mean")),
        ALL_POS,
        Param("positions", "ints", "sweep only these positions, e.g. 9,-1", metavar="LIST"),
        Param("heads", "ints", "head sites: sweep only these heads, e.g. 0,3", metavar="LIST", when=("site", HEAD_SITES)),
    ), run_patch, "grid", "pairs", cancellable=True, check=_check_patch, key=("site", "direction", "metric"),
    doc="Each cell is the metric with that cell's clean activation written into the corrupted run.",
    headline=patch_facts,
))
declare(Analysis(
    "attrib", "attribution patching", "attribution patching: the linear estimate of a patching sweep",
    (*PAIRS, SITE, ALL_POS), run_attrib, "grid", "pairs", check=_check_pairs, key=("site", "metric"),
    doc="(a_clean - a_corrupt) . dM/da per cell, from one forward and one backward pass.",
    headline=patch_facts,
))
declare(Analysis(
    "eap", "EAP", "edge attribution patching (EAP, EAP-IG) over the whole edge graph", (
        *PAIRS, IG,
        Param("positional", "flag", "one score per (edge, position)"),
        Param("top", "int", "keep the top K edges and measure their faithfulness", minimum=1, label="top k edges"),
        Param("threshold", "float", "or keep the edges with |score| >= T", minimum=0.0),
        Param("prune", "flag", "keep only kept edges on a path from the input to the logits"),
    ), run_eap, "table", "pairs", cancellable=True, check=_check_eap, key=("ig", "top", "metric"),
    doc="Every edge's score (e_corrupt - e_clean) . dM/d(input of the reader), largest first.",
    headline=eap_facts,
))
declare(Analysis(
    "eap-curve", "EAP faithfulness curve", "faithfulness of the top-k EAP edges over k, raw and pruned", (
        *PAIRS, IG,
        Param("ks", "ints", "the k to measure, e.g. 1,5,20 (default: 1, 2, 5, 10, ... up to every edge)",
              metavar="LIST"),
    ), run_eap_curve, "series", "pairs", cancellable=True, check=_check_pairs, key=("ig", "metric"),
    doc="A line per variant (raw top-k, pruned to edges connected to input and logits) over k.",
    headline=eap_curve_facts,
))
declare(Analysis(
    "path-patch", "path patching", "senders' clean outputs into receivers' inputs only", (
        *PAIRS,
        Param("senders", "nodes", "comma list of writers: input, L0H1, L0MLP (Mamba: L3)", required=True),
        Param("receivers", "nodes", "comma list of readers: L1H2.q, L1H2.k, L1MLP, logits", required=True),
    ), run_path_patch, "table", "pairs", check=_check_pairs, key=("senders", "receivers"),
    doc="The corrupted run with only the chosen edges carrying their clean values.",
    headline=path_patch_facts,
))
