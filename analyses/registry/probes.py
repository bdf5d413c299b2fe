"""Linear probes (docs/probes.md): held-out accuracy of a logistic probe per layer over a labelled
dataset, and the best probe's direction (for steering, or to project out)."""

from __future__ import annotations

from typing import Any

from analyses.registry import Analysis, Param, declare, int_list
from analyses.registry._facts import rate


def run_probe(lm, task, data, label, site, positions, layers, n, seed, test_share, l2, batch, prepend_bos,
              progress=None, should_stop=None):
    from analyses.probes import labelled_texts, probe_layers

    texts, labels = labelled_texts(task, data, label, n, seed)
    series = probe_layers(lm.hooked, lm.tokenizer, texts, labels, site, int_list(positions, "--positions") or [-1],
                          int_list(layers, "--layers"), test_share, seed, l2, batch, prepend_bos, progress, should_stop)
    series.meta = {"data": f"task {task} ({label})" if task else f"file {data}", **series.meta}
    return series


def _check(p: dict[str, Any]) -> None:
    from analyses.errors import BadInput

    if bool(p.get("task")) == bool(p.get("data")):
        raise BadInput("give one labelled dataset: --task NAME or --data FILE (JSONL with \"text\" and \"label\")")
    if p.get("test_share") is not None and not 0 < p["test_share"] < 1:
        raise BadInput(f"--test-share {p['test_share']:g}: a share in (0, 1)")


def probe_facts(series: Any) -> list[str]:
    """The best layer and position, against the majority baseline."""
    m = series.meta
    best = m.get("best", {})
    return [f"best probe: layer {best.get('layer')} pos {best.get('pos')} held-out accuracy "
            f"{rate(best.get('accuracy'))} (majority {rate(m.get('majority_baseline'))}; "
            f"{m.get('n_train')} train / {m.get('n_test')} test, {len(m.get('classes', []))} labels)"]


declare(Analysis(
    "probe", "linear probe", "held-out accuracy of a logistic probe per layer: does the activation linearly encode "
    "the label?", (
        Param("task", "task", "a built-in task's prompts, labelled by --label (default: the model's own task)",
              metavar="NAME"),
        Param("data", "path", "or a JSONL file of {\"text\": ..., \"label\": ...} rows", metavar="FILE"),
        Param("label", "choice", "with --task: what to predict", default="variant", choices=("variant", "answer")),
        Param("site", "choice", "the activation read at each layer", default="resid_post",
              choices=("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")),
        Param("positions", "ints", "positions to probe, one line each (negative: from each text's end)", default="-1",
              metavar="LIST"),
        Param("layers", "ints", "layers to probe (default: all)", metavar="LIST"),
        Param("n", "int", "texts (at most)", default=512, minimum=4),
        Param("seed", "int", "seed of the task's sample and of the train/test split", default=0),
        Param("test_share", "float", "share of the texts held out", default=0.25, minimum=0.01, label="test share"),
        Param("l2", "float", "L2 penalty on the standardised weights", default=1e-3, minimum=0.0),
        Param("batch", "int", "texts per forward pass", default=64, minimum=1),
        Param("prepend_bos", "bos", "prepend the tokenizer's BOS token (default: as the tokenizer does)", label="BOS"),
    ), run_probe, "series", "model", cancellable=True, check=_check, key=("site", "label", "positions"),
    headline=probe_facts,
    doc="Logistic regression (L-BFGS, float64) on standardised activations; a fixed seeded split; only the asked "
        "hooks and positions are kept. meta.direction: the best probe's unit direction (two labels).",
))
