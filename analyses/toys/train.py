"""Training the built-in toy models from scratch, on CPU, in minutes.

Each recipe fixes the task, architecture, sizes, optimiser and seeds, so ``train(name)`` always
writes the same checkpoint: the shipped ones are its output. The model is an ordinary HF model
class, trained on next-token cross-entropy at the answer position (and, for Count01, at the
end-of-sequence position after it), over prompts from the task's *train* split only.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from analyses.errors import BadInput
from analyses.tasks import task_examples, vocabulary
from analyses.toys.recipes import RECIPES, Recipe  # noqa: F401  (RECIPES: re-exported)
from analyses.tokens import pad_batch


def _freeze_mlps(model: torch.nn.Module) -> None:
    for block in model.transformer.h:
        for p in block.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)


def _batch(tokenizer, recipe: Recipe, step: int):
    """Token ids, attention mask, and (row, position, token) triples the loss is taken on."""
    examples = task_examples(recipe.task, recipe.batch, seed=recipe.seed * 100_003 + step, split="train")
    seqs, targets = [], []
    for row, e in enumerate(examples):
        prompt = tokenizer(e.prompt)["input_ids"]
        follow = [tokenizer(e.answer, add_special_tokens=False)["input_ids"][0]]
        if e.target is not None:
            follow.append(tokenizer.convert_tokens_to_ids(e.target))
        seqs.append(prompt + follow)
        targets += [(row, len(prompt) - 1 + k, tok) for k, tok in enumerate(follow)]
    ids, mask = pad_batch(seqs, tokenizer.pad_token_id)
    rows, cols, toks = (torch.tensor(x) for x in zip(*targets))
    return ids, mask, rows, cols, toks


def _writable_folder(out: Path) -> Path:
    """``out``, created if need be, once a file can be written there: refuse an unwritable
    place before minutes of training, not after."""
    import tempfile

    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=out):
            pass
    except OSError as e:
        raise BadInput(f"--out {out}: cannot write the checkpoint there ({e.strerror or e})") from None
    return out


def train(
    name: str,
    out_dir: str | Path,
    steps: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
) -> Path:
    """Train toy ``name`` from scratch and write its checkpoint to ``out_dir``.

    ``progress(step, total, loss)`` is called every few steps (the CLI draws a bar with it).
    """
    from transformers import AutoModelForCausalLM

    from analyses.toys.checkpoints import build_checkpoint, fast_tokenizer

    if name not in RECIPES:
        raise BadInput(f"no training recipe for {name!r}; recipes: {', '.join(RECIPES)}")
    recipe = RECIPES[name]
    total = steps if steps is not None else recipe.steps
    if total <= 0:
        raise BadInput("--steps must be positive")
    out = _writable_folder(Path(out_dir))
    words = vocabulary()
    build_checkpoint(out, recipe.family, words=words, seed=recipe.seed, bos=False, **recipe.shape)
    tokenizer = fast_tokenizer(words)
    model = AutoModelForCausalLM.from_pretrained(out).train()
    if recipe.attn_only:
        _freeze_mlps(model)
    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    warmup = max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    torch.manual_seed(recipe.seed)
    for step in range(total):
        ids, mask, rows, cols, toks = _batch(tokenizer, recipe, step)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits[rows, cols], toks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        if progress is not None and (step % 10 == 0 or step == total - 1):
            progress(step + 1, total, loss.item())
    model.eval().save_pretrained(out)
    return out
