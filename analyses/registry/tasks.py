"""Task accuracy: the check that a model solves its task the way the papers' models do."""

from __future__ import annotations

from typing import Any

from analyses.errors import BadInput
from analyses.registry import Analysis, Param, declare
from analyses.registry._facts import num, rate


def run_eval(lm, task: str | None, pairs: str | None, n: int, seed: int, split: str):
    """Accuracy on a built-in task, or on the clean prompts of a prompt-pair file."""
    from analyses.evaluate import evaluate
    from analyses.tasks import Example, task_examples
    from analyses.tasks.pair_files import read_pairs

    if pairs:
        examples = [Example(p.clean, p.answer, p.distractor, p.variant or "pairs") for p in read_pairs(pairs)]
        return evaluate(lm.hooked, lm.tokenizer, str(pairs), examples)
    return evaluate(lm.hooked, lm.tokenizer, task, task_examples(task, n, seed, split))


def eval_facts(table: Any) -> list[str]:
    """Overall accuracy and logit difference (and the end-of-sequence rule's accuracy)."""
    meta = table.meta
    facts = [f"accuracy {rate(meta['accuracy'])} on {meta['n']} prompts of {meta.get('task')}, "
             f"mean logit diff {num(meta.get('mean_logit_diff'))}"]
    if "target_accuracy" in meta:
        facts.append(f"end-of-sequence token after the answer: accuracy {rate(meta['target_accuracy'])}")
    return facts


def _check(p: dict[str, Any]) -> None:
    if bool(p["task"]) == bool(p["pairs"]):
        raise BadInput("eval needs --task NAME or --pairs FILE (one of them)")


declare(Analysis(
    "eval", "task accuracy", "task accuracy, overall and per variant", (
        Param("task", "task", "a built-in task (default: the model's own, when no file is given)", metavar="NAME"),
        Param("pairs", "path", "a JSONL file of {clean, corrupt, answer, distractor}: scores the clean prompts",
              metavar="FILE", label="pairs file"),
        Param("n", "int", "number of prompts (default 500)", default=500, minimum=1),
        Param("seed", "int", "the sample's seed", default=0),
        Param("split", "choice", "test: held out from training (default); train; all", default="test",
              choices=("test", "train", "all")),
    ), run_eval, "table", "pairs", check=_check, key=("task", "n", "split"),
    doc="Accuracy (answer logit above the distractor's) and mean logit difference, per variant and overall.",
    headline=eval_facts,
))
