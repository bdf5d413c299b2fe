"""The IOI circuit in Mamba (Ensign & Garriga-Alonso 2024): layer removal and greedy minimal
layer sets, cross-talk removal, conv-slice patching, SSM-input name arithmetic, positional EAP as
an edge x position heatmap and a binary-searched EAP circuit. Definitions: docs/mamba.md.

Per-(layer, position) resample ablation at layer_in, conv, ssm_in and out_proj is the `patch`
analysis with `--direction resample` and those Mamba sites (registry/pairs.py)."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare, int_list
from analyses.registry.defaults import last_layer
from analyses.registry._facts import data_source, grid_extreme, names, num, rate
from analyses.registry.pairs import IG, PAIRS, _check_pairs, patch_facts

NOT_MAMBA = ("gpt2", "gpt_neox", "llama", "mistral", "qwen2")  # every family but mamba (analyses.models.FAMILIES)
# The pair inputs without the metric: these analyses report accuracy and NLD themselves.
PAIR_INPUTS = tuple(p for p in PAIRS if p.name not in ("metric", "tokens"))
TARGET = Param("target", "float", "the accuracy to keep (0-1)", default=0.9, minimum=0.0, label="target acc.")


def _task(lm, capture: tuple[str, ...] = (), mamba: bool = True, **pair_args: Any):
    from analyses.inputs import pairs_input
    from analyses.mamba.task import Task, name_token_ids, require_mamba

    if mamba:
        require_mamba(lm.hooked)
    x = pairs_input(lm, **pair_args)
    task = Task.build(lm.hooked, *x.args, names=name_token_ids(lm.tokenizer), capture=capture)
    return task, x


def _check_target(p: dict[str, Any]) -> None:
    _check_pairs(p)
    if p.get("target") is not None and p["target"] > 1:
        from analyses.errors import BadInput

        raise BadInput(f"--target is an accuracy between 0 and 1 (got {p['target']:g})")


def run_removal(lm, **pair_args: Any):
    from analyses.mamba.layers import layer_removal

    task, x = _task(lm, **pair_args)
    table = layer_removal(task)
    table.meta = {**x.meta, **table.meta}
    return table


def run_greedy(lm, target: float, search: str, should_stop=None, progress=None, **pair_args: Any):
    from analyses.mamba.layers import REMOVE, RESTORE, greedy_layers
    from analyses.mamba.task import IN_PROJ

    capture = tuple(IN_PROJ.format(layer) for layer in range(lm.hooked.shape.n_layers)) if search == "crosstalk" else ()
    task, x = _task(lm, capture, **pair_args)
    series = greedy_layers(task, target, RESTORE if search == "crosstalk" else REMOVE, should_stop, progress)
    series.meta = {**x.meta, **series.meta}
    return series


def run_conv_slices(lm, layers: str | None, slice_direction: str, progress=None, should_stop=None, **pair_args: Any):
    from analyses.mamba.mixer import conv_slice_patching

    task, x = _task(lm, **pair_args)
    grid = conv_slice_patching(task, int_list(layers, "--layers"), slice_direction, x.tokens, progress, should_stop)
    grid.meta = {**x.meta, **grid.meta}
    return grid


def _eap_table(lm, x, ig: int | None, progress, should_stop):
    from analyses.eap import edge_attribution

    return edge_attribution(lm.hooked, *x.args, metric="nld", ig_steps=ig or 0, positional=True, token_labels=x.tokens,
                            progress=progress, should_stop=should_stop)


def run_eap_pos(lm, ig: int | None, top: int | None, progress=None, should_stop=None, **pair_args: Any):
    from analyses.inputs import pairs_input
    from analyses.eap import eap_positions

    x = pairs_input(lm, **pair_args)
    grid = eap_positions(_eap_table(lm, x, ig, progress, should_stop), top)
    grid.meta = {**x.meta, **grid.meta}
    return grid


def run_eap_circuit(lm, ig: int | None, target: float, progress=None, should_stop=None, **pair_args: Any):
    from analyses.edge_patching import circuit_search

    task, x = _task(lm, mamba=False, **pair_args)
    series = circuit_search(task, _eap_table(lm, x, ig, progress, should_stop), target, should_stop)
    series.meta = {**x.meta, **series.meta}
    return series


def run_name_arith(lm, layer: int | None, mode: str, n_avg: int, n: int, seed: int, offset: int, task: str = "ioi-abc",
                   should_stop=None, progress=None):
    from analyses.mamba.mixer import name_arithmetic
    from analyses.mamba.task import require_mamba

    require_mamba(lm.hooked)
    chosen = lm.hooked.shape.n_layers - 1 if layer is None else layer
    return name_arithmetic(lm.hooked, lm.tokenizer, chosen, mode, n_avg=n_avg, n=n, seed=seed, offset=offset,
                           should_stop=should_stop, task=task)


def run_state_cosine(lm, layers: str | None, **pair_args: Any):
    from analyses.inputs import pairs_input
    from analyses.mamba.state import state_cosine
    from analyses.mamba.task import require_mamba

    require_mamba(lm.hooked)
    x = pairs_input(lm, **pair_args)
    grid = state_cosine(lm.hooked, x.clean, int_list(layers, "--layers"), x.tokens)
    grid.meta = {**x.meta, **grid.meta}
    return grid


def state_cosine_facts(grid: Any) -> list[str]:
    """Per layer, the input position whose write the final state keeps most."""
    facts = [f"mean cos(B̄_i x_i, h_j) over {grid.meta.get('n_prompts')} prompts of {data_source(grid.meta)}"]
    pos = grid.labels["input pos"]
    for layer, rows in zip(grid.labels["layer"], grid.values):
        last = [row[-1] for row in rows]  # each input position against the last state
        best = max(range(len(last)), key=last.__getitem__)
        facts.append(f"{layer}: the last state is closest to the write at {pos[best]} ({num(last[best])})")
    return facts


def removal_facts(table: Any) -> list[str]:
    """The clean accuracy and the layer whose removal hurts most."""
    acc = dict(zip(table.labels, table.columns["accuracy"]))
    prob = dict(zip(table.labels, table.columns.get("p_correct", [None] * len(table.labels))))
    layers = [(lab, a) for lab, a in acc.items() if lab != "none"]
    worst = min(layers, key=lambda la: la[1]) if layers else None
    facts = [f"accuracy {rate(acc.get('none'))}, P(correct) among the names {rate(prob.get('none'))} with no "
             f"layer removed, on {data_source(table.meta)}"]
    if worst is not None:
        facts.append(f"most needed layer {worst[0]}: accuracy {rate(worst[1])}, P(correct) {rate(prob.get(worst[0]))} "
                     "without it")
    return facts


def greedy_facts(series: Any) -> list[str]:
    """The kept layers and what they score."""
    m = series.meta
    return [f"kept layers {names(m.get('kept', []), 12)} (removed {names(m.get('removed_order', []), 12)}; "
            f"{m.get('mode')} search)",
            f"accuracy {rate(m.get('accuracy'))}, NLD {num(m.get('nld'))} (target {rate(m.get('target'))}) "
            f"on {data_source(m)}"]


def eap_pos_facts(grid: Any) -> list[str]:
    """The strongest (edge, position) score."""
    m = grid.meta
    cell = grid_extreme(grid)
    facts = [f"{m.get('method', 'EAP')} on {data_source(m)}: {m.get('n_writers')} writers x {m.get('n_readers')} "
             f"readers, {len(grid.labels[grid.axes[0]])} edges shown"]
    if cell is not None:
        facts.append(f"strongest edge at a position: {cell[0]} {num(cell[1])}")
    return facts


def circuit_facts(series: Any) -> list[str]:
    """The circuit found: its size, accuracy and faithfulness, and its first edges."""
    m = series.meta
    return [f"circuit of {m.get('edges')} of {m.get('edges_total')} edges: accuracy {rate(m.get('accuracy'))}, "
            f"faithfulness {num(m.get('faithfulness'))} (target {rate(m.get('target'))}) on {data_source(m)}",
            f"edges {names(m.get('circuit', []), 6)}"]


def arith_facts(grid: Any) -> list[str]:
    """The mean flip rate at the layer edited."""
    m = grid.meta
    return [f"mean flip rate {rate(m.get('mean_flip_rate'))} ({m.get('mode')} at layer {m.get('layer')}, offset "
            f"{m.get('offset')}); {m.get('n_test')} test prompts, averages over {m.get('n_avg')}"]


declare(Analysis(
    "mamba-removal", "Mamba layer removal", "Mamba: accuracy and NLD with each layer's write (out_proj) zeroed",
    PAIR_INPUTS, run_removal, "table", "pairs", check=_check_pairs, excludes=NOT_MAMBA,
    headline=removal_facts,
    doc="Row 'none' is the clean run; accuracy (argmax) and p_correct (the paper's softmax probability of the "
        "answer) are over the prompt's names plus the corrupted answer.",
))
declare(Analysis(
    "mamba-greedy", "Mamba greedy layer set", "Mamba: a greedy minimal set of layers keeping a target accuracy", (
        *PAIR_INPUTS, TARGET,
        Param("search", "choice", "removal: zero the least needed layer while accuracy >= target; crosstalk: "
              "start with every in_proj resample-ablated, un-ablate the best layer until accuracy >= target",
              default="removal", choices=("removal", "crosstalk")),
    ), run_greedy, "series", "pairs", cancellable=True, check=_check_target, key=("search", "target"),
    headline=greedy_facts,
    excludes=NOT_MAMBA, doc="Accuracy and NLD after each greedy step; the kept layers are in the run's facts.",
))
declare(Analysis(
    "conv-slices", "Mamba conv-slice patching", "Mamba: patch one conv kernel slice at one position of one layer", (
        *PAIR_INPUTS,
        Param("layers", "ints", "only these layers, e.g. 1 (default: all)", metavar="LIST"),
        Param("slice_direction", "choice", "noise: corrupted slice into the clean run (the paper's); "
              "denoise: the reverse", default="noise", choices=("noise", "denoise"), label="direction"),
    ), run_conv_slices, "grid", "pairs", cancellable=True, check=_check_pairs, key=("layers", "slice_direction"),
    headline=patch_facts,
    excludes=NOT_MAMBA, doc="NLD per layer x slice (k = -(w-1)..0) x position; slice k at p is w_k * in_proj[p + k].",
))
declare(Analysis(
    "eap-pos", "positional EAP heatmap", "positional EAP as an edge x position heatmap (top edges)", (
        *PAIR_INPUTS, IG,
        Param("top", "int", "show the top K edges by |total score| (default 30)", default=30, minimum=1,
              label="top k edges"),
    ), run_eap_pos, "grid", "pairs", cancellable=True, check=_check_pairs, key=("ig", "top"),
    headline=eap_pos_facts,
    doc="Each cell: an edge's EAP score (metric NLD) at one position, averaged over the pairs.",
))
declare(Analysis(
    "eap-circuit", "EAP circuit search", "the fewest top EAP edges whose circuit keeps a target accuracy",
    (*PAIR_INPUTS, IG, TARGET), run_eap_circuit, "series", "pairs", cancellable=True, check=_check_target,
    key=("ig", "target"),
    headline=circuit_facts,
    doc="Binary search on k; each measured k's accuracy and faithfulness (the circuit's NLD).",
))
declare(Analysis(
    "name-arith", "Mamba SSM-input name arithmetic", "Mamba: swap a name's average SSM input; flip rate per slot pair", (
        Param("layer", "int", "the layer whose hook_ssm_in is edited (default: the last)", minimum=0,
              model_default=last_layer),
        Param("mode", "choice", "replace: x <- avg[slot][new]; subtract-add: x <- x - avg[slot][old] + avg[slot][new]",
              default="subtract-add", choices=("replace", "subtract-add")),
        Param("n_avg", "int", "prompts the averages are taken over (default 2000)", default=2000, minimum=10,
              label="avg prompts"),
        Param("n", "int", "test prompts (default 200)", default=200, minimum=1),
        Param("seed", "int", "the prompts' seed", default=0),
        Param("offset", "int", "edit at name position + this (1 in the paper)", default=1, minimum=0),
        Param("task", "task", "three-name IOI prompts: ioi-abc, or ioi-marked, whose names followed by 'left' are no "
              "slots (default: the model's own, else ioi-abc)", default="ioi-abc", metavar="NAME",
              choices=("ioi-abc", "ioi-marked")),
    ), run_name_arith, "grid", "model", cancellable=True, tasks=("ioi-abc", "ioi-marked"),
    key=("layer", "mode", "offset"),
    excludes=NOT_MAMBA,
    headline=arith_facts,
    doc="Cell (slot, avg slot): the fraction of prompts whose expected new answer beats the old answer.",
))
declare(Analysis(
    "state-cosine", "Mamba state cosine", "Mamba: cosine of each position's SSM input term B̄x with each later state h", (
        *PAIR_INPUTS,
        Param("layers", "ints", "only these layers, e.g. 1 (default: all)", metavar="LIST"),
    ), run_state_cosine, "grid", "pairs", check=_check_pairs, key=("layers",), excludes=NOT_MAMBA,
    headline=state_cosine_facts,
    doc="Cell (layer, i, j): mean over the clean prompts of cos(Δ_i x_i ⊗ B_i, h_j) (paper Fig 6); not causal.",
))
