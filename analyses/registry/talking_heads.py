"""Communication channels between heads (Merullo et al. 2024, "Talking Heads"): composition
scores from the weights, SVD spectra, per-component channels, the inhibition score on a prompt,
and the search for the component edit that most helps list recall. Definitions: docs/composition.md."""

from __future__ import annotations

from typing import Any

from analyses.labels import check_head_syntax
from analyses.registry import Analysis, Param, declare, float_list, int_list, names_list
from analyses.registry._facts import num, rate, top_row
from analyses.registry.prompt import BOS

FOLD = Param("fold", "choice", "which weights: tl = as TransformerLens's from_pretrained processes them (norm weight "
             "folded in, centred); ln = norm weight folded in only; raw = as stored", default="tl",
             choices=("tl", "ln", "raw"))
MODE = Param("mode", "choice", "receiver side: Q (R = W_Q W_Kᵀ), K (R = W_K W_Qᵀ) or V (R = W_V W_O)", default="Q",
             choices=("Q", "K", "V"))


def run_composition(lm, mode: str, fold: str):
    from analyses.talking_heads.composition import composition_grid

    return composition_grid(lm.hooked, mode, fold)


def run_spectra(lm, circuit: str, fold: str, show: str | None):
    from analyses.talking_heads.composition import spectra

    return spectra(lm.hooked, circuit, fold, names_list(show) or None)


def run_channels(lm, mode: str, fold: str, top: int, sender: str | None, receiver: str | None, draws: int):
    from analyses.talking_heads.composition import channels

    return channels(lm.hooked, mode, fold, top, sender or None, receiver or None, draws)


def run_inhibition(lm, prompt: str, sender: str, receiver: str, positions: str, vs: str | None, query: int,
                   prepend_bos: bool | None):
    from analyses.inputs import prompt_input
    from analyses.talking_heads.inhibition import inhibition

    x = prompt_input(lm, prompt, None, None, prepend_bos)
    return inhibition(lm.hooked, x.ids, sender, receiver, int_list(positions, "--positions") or [],
                      int_list(vs, "--vs") or [], query, x.meta["prompt_tokens"])


def run_inhibition_task(lm, task: str, n: int, seed: int, sender: str, receiver: str):
    from analyses.talking_heads.inhibition import inhibition_task
    from analyses.tasks import task_examples

    return inhibition_task(lm.hooked, lm.tokenizer, task_examples(task, n, seed, "test"), sender, receiver, task)


def run_recall_edit(lm, task: str, n: int, seed: int, scales: str, comps: int, progress=None, should_stop=None):
    from analyses.talking_heads.inhibition import recall_edit_search

    return recall_edit_search(lm.hooked, lm.tokenizer, n, seed, float_list(scales, "--scales") or [], comps, task,
                              progress, should_stop)


def composition_facts(grid: Any) -> list[str]:
    """The strongest pair against the random baseline."""
    m = grid.meta
    return [f"{m.get('mode')}-composition max {num(m.get('max'), sign=False)} at {m.get('argmax')}; random "
            f"baseline {num(m.get('null_mean'), sign=False)} ± {num(m.get('null_std'), sign=False)}"]


def spectra_facts(series: Any) -> list[str]:
    """The largest singular value and the head it belongs to."""
    heads = [(name, ys[0]) for name, ys in series.lines.items() if ys]
    name, top = max(heads, key=lambda h: h[1])
    return [f"{series.meta.get('circuit', '').upper()} circuits of {len(heads)} heads; largest singular value "
            f"{num(top, sign=False)} ({name}, component 0)"]


def channels_facts(table: Any) -> list[str]:
    """The strongest channel, against a random sender."""
    m = table.meta
    top = top_row(table, largest=True)
    z = table.columns["z"][table.labels.index(top[0])] if top and "z" in table.columns else None
    return [f"strongest channel {top[0]}: CS {num(top[1], sign=False)} (z {num(z, 1)}); "
            f"1/sqrt(d_head) {num(m.get('null_1_over_sqrt_d'), sign=False)}"]


def inhibition_facts(table: Any) -> list[str]:
    """The sender component that moves the receiver's attention most."""
    m = table.meta
    top = top_row(table)
    column = next(iter(table.columns))
    return [f"{m.get('sender')} -> {m.get('receiver')}: largest {column} {top[0]} {num(top[1])}; "
            f"rank agreement {rate(m.get('rank_agreement'))}"]


def recall_edit_facts(table: Any) -> list[str]:
    """The chosen edit, how it scored on the search sample, and its gain on held-out lists."""
    m = table.meta
    return [f"chosen edit {m['edit']} (best of {m.get('edits_tried')} tried on {m.get('task')})",
            f"search accuracy {rate(m.get('search_accuracy_before'))} -> {rate(m.get('search_accuracy_after'))}; "
            f"held-out gain {num(m.get('held_out_gain'))}"]


def _check_channels(p: dict[str, Any]) -> None:
    check_head_syntax(p["sender"], "--sender")
    check_head_syntax(p["receiver"], "--receiver")


def _check_inhibition(p: dict[str, Any]) -> None:
    check_head_syntax(p["sender"], "--sender")
    check_head_syntax(p["receiver"], "--receiver")


def _check_spectra(p: dict[str, Any]) -> None:
    for h in names_list(p["show"]):
        check_head_syntax(h, "--show")


declare(Analysis(
    "composition", "composition scores", "Q/K/V composition scores of every sender head with every later head",
    (MODE, FOLD), run_composition, "grid", "model", key=("mode", "fold"), excludes=("mamba",),
    headline=composition_facts,
    doc="‖L R‖_F/(‖L‖_F‖R‖_F) with L the sender's OV, as TransformerLens's all_composition_scores; a sender x "
        "receiver heatmap (0 unless the receiver is in a later layer); meta has the random-sender baseline.",
))
declare(Analysis(
    "head-spectra", "head SVD spectra", "singular values of every head's OV or QK circuit", (
        Param("circuit", "choice", "ov (W_V W_O) or qk (W_Q W_Kᵀ)", default="ov", choices=("ov", "qk")),
        FOLD,
        Param("show", "text", "only these heads, e.g. L0H1,L1H2 (default: all)", metavar="HEADS", label="heads"),
    ), run_spectra, "series", "model", key=("circuit", "show"), excludes=("mamba",), check=_check_spectra,
    headline=spectra_facts,
    doc="One line per head: singular value against component index (components are numbered by these).",
))
declare(Analysis(
    "channels", "top channels", "the strongest sender-component -> receiver channels, against random senders", (
        MODE, FOLD,
        Param("top", "int", "rows to list (0: every pair and component)", default=30, minimum=0),
        Param("sender", "text", "only this sender head, e.g. L0H1", metavar="HEAD"),
        Param("receiver", "text", "only this receiver head, e.g. L1H2", metavar="HEAD"),
        Param("draws", "int", "random sender matrices for the baseline", default=20, minimum=2),
    ), run_channels, "table", "model", key=("mode", "sender", "receiver"), excludes=("mamba",),
    check=_check_channels,
    headline=channels_facts,
    doc="CS_i = ‖v_iᵀ R‖/‖R‖_F per OV component i of the sender (v_i its write direction), z against the same "
        "statistic for random Gaussian factors of the same shapes, the singular value and the pair's score.",
))
HEAD_PAIR = (
    Param("sender", "text", "the sender head, e.g. L0H1", required=True, metavar="HEAD"),
    Param("receiver", "text", "the receiver head in a later layer, e.g. L1H2", required=True, metavar="HEAD"),
)
declare(Analysis(
    "inhibition", "inhibition score", "how one sender component steers a later head's attention on a prompt", (
        Param("prompt", "prompt", "the prompt", required=True),
        *HEAD_PAIR,
        Param("positions", "ints", "key positions whose attention is summed, e.g. 3,5", required=True,
              metavar="LIST"),
        Param("vs", "ints", "subtract the attention to these key positions", metavar="LIST"),
        Param("query", "int", "the query position (negative counts from the end)", default=-1),
        BOS,
    ), run_inhibition, "table", "prompt", key=("sender", "receiver", "positions"), excludes=("mamba",),
    check=_check_inhibition,
    headline=inhibition_facts,
    doc="Per sender component: the change in the receiver's attention score when that component is projected "
        "out of the sender's output at the query position, beside its Q-composition CS_i.",
))
declare(Analysis(
    "inhibition-task", "inhibition score (task)", "inhibition score averaged over a task's prompts (IOI: END -> IO "
    "vs S1)", (
        Param("task", "task", "the task (default: the model's own, else ioi): its answer and distractor must occur "
              "in the prompt", default="ioi", metavar="NAME", choices=("ioi", "ioi-abc", "recall")),
        Param("n", "int", "prompts (held-out split)", default=50, minimum=1),
        Param("seed", "int", "the sample's seed", default=0),
        *HEAD_PAIR,
    ), run_inhibition_task, "table", "model", key=("task", "sender", "receiver"), excludes=("mamba",),
    check=_check_inhibition,
    headline=inhibition_facts,
    doc="D = attention from the last token to the answer's first position minus to the distractor's; per sender "
        "component i projected out at the last token, I_i = (D - D_i)/D, beside its Q-composition CS_i.",
))
declare(Analysis(
    "recall-edit", "edit search", "the one-component weight edit that most helps a task, gain per list length", (
        Param("task", "task", "the task (default: the model's own, else recall)", default="recall", metavar="NAME"),
        Param("n", "int", "prompts in the search sample and in the held-out sample", default=300, minimum=10),
        Param("seed", "int", "the samples' seed", default=0),
        Param("scales", "floats", "scales tried for each component (0 removes it)", default="0,2", metavar="LIST"),
        Param("comps", "int", "leading components per head to try (0: all)", default=0, minimum=0),
    ), run_recall_edit, "table", "model", cancellable=True, tasks=("recall", "laundry-toy"),
    key=("task", "scales", "comps"),
    excludes=("mamba",),
    headline=recall_edit_facts,
    doc="Every LxHy:ov:i=scale is scored on a search sample (train split); the best is measured on held-out "
        "prompts: accuracy before, after and the gain per variant.",
))
