"""Counting heads on Count01 (Zsámboki et al. 2025): do a one-layer model's heads each solve the
task (a pseudo-ensemble) or split it (division of labour), and how does the model combine them?
Also training a toy from scratch, so models with other head counts and seeds can be compared."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare, float_list, int_list
from analyses.registry._facts import grid_extreme, names, num, rate

EXAMPLES = (
    Param("n", "int", "Count01 examples to measure on (default 400)", default=400, minimum=10),
    Param("seed", "int", "the examples' seed (and the probe's split)", default=0),
    Param("split", "choice", "test: held out from training (default); train; all", default="test",
          choices=("test", "train", "all")),
    Param("layer", "int", "the attention layer whose heads are measured", default=0),
    Param("task", "task", "count01: yes/no answered at '='; count01-eos: may the string end here (EOS allowed "
          "exactly when #1 > #0), read at every prefix's end", default="count01", choices=("count01", "count01-eos")),
)
READOUT = {"count01": "answer", "count01-eos": "eos"}  # the readout each task's decision is read with


def _check_task(p: dict[str, Any]) -> None:
    """Only the Count01 tasks, refused before the model loads."""
    from analyses.errors import BadInput

    if p["task"] not in READOUT:
        raise BadInput(f"--task must be one of {', '.join(READOUT)} (got {p['task']!r})")


def _examples(n: int, seed: int, split: str, task: str):
    from analyses.tasks import task_examples

    return task_examples(task, n, seed, split)


def run_heads(lm, n: int, seed: int, split: str, layer: int, task: str):
    from analyses.counting import head_metrics

    return head_metrics(lm.hooked, lm.tokenizer, _examples(n, seed, split, task), layer=layer, seed=seed,
                        readout=READOUT[task])


def run_attention_sweep(lm, n: int, seed: int, split: str, layer: int, task: str, w01s: str, w02s: str,
                        heads: str | None):
    from analyses.counting import attention_sweep

    return attention_sweep(lm.hooked, lm.tokenizer, _examples(n, seed, split, task), float_list(w01s, "--w01s"),
                           float_list(w02s, "--w02s"), heads=int_list(heads, "--heads"), layer=layer,
                           readout=READOUT[task])


def run_swap(lm, n: int, seed: int, split: str, layer: int, task: str):
    from analyses.counting import swap_ablation

    return swap_ablation(lm.hooked, lm.tokenizer, _examples(n, seed, split, task), layer=layer, seed=seed,
                         readout=READOUT[task])


def run_combination(lm, n: int, seed: int, split: str, layer: int, task: str):
    from analyses.counting import head_combination

    return head_combination(lm.hooked, lm.tokenizer, _examples(n, seed, split, task), layer=layer,
                            readout=READOUT[task])


def run_train(lm, recipe: str, n_heads: int | None, train_seed: int | None, steps: int | None, out: str,
              eval_every: int, force: bool, progress=None, should_stop=None):
    """Train a toy from scratch (the loaded model is not used): the learning curve, and where the
    checkpoint is, to open as a model."""
    from analyses.results import Series
    from analyses.toys.train import train_with_curve

    report = train_with_curve(recipe, out, steps=steps, heads=n_heads, seed=train_seed, eval_every=eval_every,
                              progress=(lambda d, t, loss: progress(d, t)) if progress else None,
                              should_stop=should_stop, force=force)
    curve = report["curve"]
    lines = {k: [float(v) for v in curve[k]] for k in curve if k != "step"}
    meta: dict[str, Any] = {k: report[k] for k in ("path", "steps_done", "cancelled", "seconds")}
    meta.update(recipe=recipe, heads=n_heads, seed=train_seed, ordered=True)
    return Series("train", list(curve["step"]), lines, "step", meta)


def _accuracy(m: dict[str, Any]) -> str:
    if m.get("readout") == "eos":
        return f"model EOS-decision accuracy {rate(m.get('accuracy'))} on {m.get('n')} prefixes, layer {m.get('layer')}"
    eos = f" (end-of-sequence {rate(m['eos_accuracy'])})" if "eos_accuracy" in m else ""
    return f"model accuracy {rate(m.get('accuracy'))}{eos} on {m.get('n')} examples, layer {m.get('layer')}"


def heads_facts(table: Any) -> list[str]:
    """The model's accuracy and the head that does best alone."""
    heads = [i for i, lab in enumerate(table.labels) if lab.startswith("L")]  # not the "model" row
    i = max(heads, key=lambda j: table.columns["own_acc"][j])
    best = (table.labels[i], table.columns["own_acc"][i])
    one_dir = table.columns.get("s_acc_one_dir")
    one = f" (one direction {rate(one_dir[i])})" if one_dir else ""
    return [_accuracy(table.meta),
            f"best head alone {best[0]}: accuracy {rate(best[1])}, s-acc {rate(table.columns['s_acc'][i])}{one}, "
            f"AUC {rate(table.columns['auc'][i])}"]


def attention_facts(grid: Any) -> list[str]:
    """The accuracy as given and the ratios that hurt it most."""
    m = grid.meta
    low = grid_extreme(grid, lowest=True)
    worst = f"; lowest {rate(low[1])} at {low[0]}" if low else ""
    return [f"accuracy {rate(m.get('base_accuracy'))} as the model attends{worst} "
            f"(heads {names(m.get('heads', []))}, n {m.get('n')})"]


def swap_facts(table: Any) -> list[str]:
    """Per head, whether its pattern or its values matter more."""
    cols = table.columns
    parts = [f"{h} pattern {rate(p)} / values {rate(v)}" for h, p, v in
             zip(table.labels, cols["pattern_resampled_acc"], cols["values_resampled_acc"])]
    return [_accuracy(table.meta), "resampled: " + "; ".join(parts[:6])]


def combine_facts(table: Any) -> list[str]:
    """How the model's own weighting of the heads compares with a fit and with uniform weights."""
    m = table.meta
    acc = dict(zip(table.labels, table.columns["acc"]))
    what = "EOS-decision accuracy" if m.get("readout") == "eos" else "accuracy"
    return [_accuracy(m),
            f"{what} by weighting: " + ", ".join(f"{k} {rate(v)}" for k, v in acc.items())
            + f"; heads-only fit R² {rate(m.get('heads_only_r2'))}"]


def train_facts(series: Any) -> list[str]:
    """Where the checkpoint went, how far training got, and its last held-out accuracy."""
    m = series.meta
    stopped = " (stopped early)" if m.get("cancelled") else ""
    seconds = num(m.get("seconds"), 0, sign=False)
    facts = [f"wrote {m.get('path')}: {m.get('steps_done')} steps{stopped}, {seconds} s"]
    if series.x and "accuracy" in series.lines:
        facts.append(f"held-out accuracy {rate(series.lines['accuracy'][-1])} at step {series.x[-1]}")
    return facts


def _check_train(p: dict[str, Any]) -> None:
    """A non-empty --out is refused before the model loads (the TUI asks whether to replace it)."""
    from analyses.toys import check_out_folder

    check_out_folder(p["out"], p["force"])


def _recipes() -> tuple[str, ...]:
    from analyses.toys.recipes import TRAIN_RECIPES

    return tuple(TRAIN_RECIPES)


declare(Analysis(
    "count-heads", "count: per-head metrics", "Count01: how well each head alone separates more-1s from more-0s",
    EXAMPLES, run_heads, "table", "model", tasks=("count01", "count01-eos"), key=("n", "split", "task"), check=_check_task,
    headline=heads_facts,
    doc="Per head: AUC and s-acc (best of both directions; s_acc_one_dir: 'yes above a threshold' only) of its "
        "direct contribution to the decision logit (yes - no; count01-eos: EOS - mean symbol), a linear probe's "
        "held-out accuracy, attention ratios w01 and w02 (raw and value-weighted), and its accuracy alone.",
))
declare(Analysis(
    "count-attention", "count: attention sweep", "Count01: accuracy when heads attend to 1s and 2s in set ratios "
    "to 0s", (
        *EXAMPLES,
        Param("w01s", "floats", "attention to a 1 relative to a 0", default="0.25,0.5,1,2,4", metavar="LIST"),
        Param("w02s", "floats", "attention to a 2 relative to a 0", default="0,0.5,1,2", metavar="LIST"),
        Param("heads", "ints", "the heads whose attention is set (default: all)", metavar="LIST"),
    ), run_attention_sweep, "grid", "model", key=("w01s", "w02s", "heads", "task"), check=_check_task,
    headline=attention_facts,
    doc="A w01 x w02 grid of model accuracy with the heads' attention row at '=' set to those ratios, values kept.",
))
declare(Analysis(
    "count-swap", "count: pattern vs values", "Count01: accuracy with one head's attention pattern or its values "
    "taken from another string", EXAMPLES, run_swap, "table", "model", key=("n",), check=_check_task,
    headline=swap_facts,
    doc="Which matters more for a head: where it attends or what it reads.",
))
declare(Analysis(
    "count-combine", "count: head weights", "Count01: the model's own head weighting vs least squares vs uniform",
    EXAMPLES, run_combination, "table", "model", key=("n", "task"), check=_check_task,
    headline=combine_facts,
    doc="Answer and end-of-sequence accuracy (count01-eos: the EOS decision, p(EOS) > q/2 exactly when #1 > #0) "
        "with the heads' outputs weighted as fitted, uniformly (equal spread), or as the model does.",
))
declare(Analysis(
    "train-toy", "train a toy", "train a built-in toy from scratch, with a learning curve", (
        Param("recipe", "choice", "the toy's recipe", default="count01", choices=_recipes()),
        Param("n_heads", "int", "attention heads per layer (default: the recipe's)", minimum=1, label="heads"),
        Param("train_seed", "int", "seed of the weights and the data (default: the recipe's)", label="train seed"),
        Param("steps", "int", "optimizer steps (default: the recipe's)", minimum=1),
        Param("out", "path", "the checkpoint folder to write", required=True, metavar="DIR"),
        Param("eval_every", "int", "held-out accuracy every this many steps", default=100, minimum=1),
        Param("force", "flag", "train into a folder that is not empty, writing over its files (the TUI asks first)",
              label="replace"),
    ), run_train, "series", "model", cancellable=True, check=_check_train,
    key=("recipe", "n_heads", "train_seed", "steps"),
    headline=train_facts,
    doc="Loss and held-out accuracy over steps; the checkpoint loads like any other (--model DIR).",
))
