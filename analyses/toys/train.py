"""Training the built-in toy models from scratch, on CPU, in minutes.

Each recipe fixes the task, architecture, sizes, optimiser and seeds, so ``train(name)`` always
writes the same checkpoint: the shipped ones are its output. The model is an ordinary HF model
class, trained on next-token cross-entropy at the answer position (and, for Count01, at the
end-of-sequence position after it), or at every position for a recipe with ``every_position``
(a language model's loss), over prompts from the task's *train* split only.

``train_with_curve`` is the same run with the knobs a study needs: another head count (same
d_model), another seed (weights *and* data stream), a stop request checked before every step (the
checkpoint so far is still written), and a held-out learning curve every ``eval_every`` steps.
With none of them given it writes exactly what ``train(name)`` writes.
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable
from pathlib import Path

import torch
import torch.nn.functional as F

from analyses.errors import BadInput
from analyses.tasks import task_examples, vocabulary
from analyses.tokens import pad_batch, padding_id
from analyses.toys import check_out_folder
from analyses.toys.recipes import RECIPES, TRAIN_RECIPES, Recipe  # noqa: F401  (RECIPES: re-exported)

HELD_OUT_N = 256  # held-out examples behind each point of the learning curve
HELD_OUT_SEED = 3  # their seed, in the test split (no test prompt is ever trained on)


def _freeze_mlps(model: torch.nn.Module) -> None:
    for block in model.transformer.h:
        for p in block.mlp.parameters():
            p.data.zero_()
            p.requires_grad_(False)


def _init_embeddings(model: torch.nn.Module, std: float, seed: int) -> None:
    """Token and position embeddings drawn from N(0, std^2) (a scale, nothing planted). No shipped
    recipe uses it; the erasure study varies it (bench/erasure_toy_attempt.py --embed-std): with
    four unused token ids, scale 0.3 got the repeated-segment model off its plateau
    (docs/erasure-toy.md)."""
    g = torch.Generator().manual_seed(seed)
    with torch.no_grad():
        for w in (model.transformer.wte.weight, model.transformer.wpe.weight):
            w.copy_(torch.randn(w.shape, generator=g) * std)


def _encode(tokenizer, examples) -> tuple[list[list[int]], list[list[int]]]:
    """Each example's prompt ids, and the ids that should follow it (answer, then the target if
    any). One batched tokenizer call for the prompts; the few distinct answers are looked up once."""
    prompts = tokenizer([e.prompt for e in examples])["input_ids"]
    answer_ids: dict[str, int] = {}
    target_ids: dict[str, int] = {}
    follows = []
    for e in examples:
        if e.answer not in answer_ids:
            answer_ids[e.answer] = tokenizer(e.answer, add_special_tokens=False)["input_ids"][0]
        follow = [answer_ids[e.answer]]
        if e.target is not None:
            if e.target not in target_ids:
                target_ids[e.target] = tokenizer.convert_tokens_to_ids(e.target)
            follow.append(target_ids[e.target])
        follows.append(follow)
    return [list(p) for p in prompts], follows


def _batch(tokenizer, recipe: Recipe, step: int):
    """Token ids, attention mask, and (row, position, token) triples the loss is taken on."""
    if recipe.task == "count01-eos":  # whole strings, every next token (tasks/count01_eos.py)
        from analyses.tasks.count01_eos import sequence_batch

        return sequence_batch(tokenizer, recipe.batch, recipe.seed * 100_003 + step)
    examples = task_examples(recipe.train_task or recipe.task, recipe.batch, seed=recipe.seed * 100_003 + step,
                             split="train")
    prompts, follows = _encode(tokenizer, examples)
    seqs, targets = [], []
    for row, (prompt, follow) in enumerate(zip(prompts, follows)):
        seq = prompt + follow
        seqs.append(seq)
        if recipe.every_position:  # a language model's loss: every next token of the text
            targets += [(row, pos, seq[pos + 1]) for pos in range(len(seq) - 1)]
        else:
            targets += [(row, len(prompt) - 1 + k, tok) for k, tok in enumerate(follow)]
    ids, mask = pad_batch(seqs, padding_id(tokenizer))
    rows, cols, toks = (torch.tensor(x) for x in zip(*targets))
    return ids, mask, rows, cols, toks


class _HeldOut:
    """A fixed held-out sample, encoded once, scored like ``analyses.evaluate.evaluate``: accuracy
    = answer logit > distractor logit at the last prompt token; EOS accuracy = the argmax after
    the answer is the target (only where examples have a target)."""

    def __init__(self, tokenizer, task: str, n: int = HELD_OUT_N, seed: int = HELD_OUT_SEED):
        examples = task_examples(task, n, seed=seed, split="test")
        prompts, follows = _encode(tokenizer, examples)
        distractors = _encode(tokenizer, [dataclasses.replace(e, answer=e.distractor, target=None) for e in examples])[1]
        self.ids, self.mask = pad_batch([p + f[:1] for p, f in zip(prompts, follows)], padding_id(tokenizer))
        self.rows = torch.arange(len(examples))
        self.last = torch.tensor([len(p) - 1 for p in prompts])
        self.answer = torch.tensor([f[0] for f in follows])
        self.distractor = torch.tensor([d[0] for d in distractors])
        has_target = [len(f) > 1 for f in follows]
        self.target_rows = torch.tensor([i for i, t in enumerate(has_target) if t], dtype=torch.long)
        self.target = torch.tensor([f[1] for f in follows if len(f) > 1], dtype=torch.long)

    @torch.no_grad()
    def score(self, model: torch.nn.Module) -> tuple[float, float, float]:
        """(accuracy, EOS accuracy or NaN without targets, held-out loss: the training loss's
        cross-entropy at the answer and target positions, without dropout)."""
        was_training = model.training
        model.eval()  # no dropout: scoring draws no random numbers, so the run is unchanged by it
        logits = model(input_ids=self.ids, attention_mask=self.mask).logits
        model.train(was_training)
        last = logits[self.rows, self.last]
        accuracy = float((last[self.rows, self.answer] > last[self.rows, self.distractor]).float().mean())
        if len(self.target_rows) == 0:
            return accuracy, float("nan"), float(F.cross_entropy(last, self.answer))
        after = logits[self.target_rows, self.last[self.target_rows] + 1]
        eos_accuracy = float((after.argmax(-1) == self.target).float().mean())
        loss = F.cross_entropy(torch.cat([last, after]), torch.cat([self.answer, self.target]))
        return accuracy, eos_accuracy, float(loss)


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


def resolve_recipe(name: str, heads: int | None = None, seed: int | None = None) -> Recipe:
    """The recipe ``name`` with ``heads`` attention heads (same d_model) and ``seed`` (weights and
    data stream); BadInput for an unknown name, a head count that does not divide d_model, a
    negative seed."""
    if name not in TRAIN_RECIPES:
        raise BadInput(f"no training recipe for {name!r}; recipes: {', '.join(TRAIN_RECIPES)}")
    recipe = TRAIN_RECIPES[name]
    if heads is not None:
        if recipe.family == "mamba":
            raise BadInput(f"--heads: {name} is a Mamba model; it has no attention heads")
        d_model = recipe.shape.get("d_model", 32)
        if isinstance(heads, bool) or not isinstance(heads, int) or heads <= 0 or d_model % heads:
            divisors = [h for h in range(1, d_model + 1) if d_model % h == 0]
            raise BadInput(f"--heads {heads}: {name} has d_model {d_model}, so the head count must divide it "
                           f"({', '.join(map(str, divisors))})")
        recipe = dataclasses.replace(recipe, shape={**recipe.shape, "n_heads": heads})
    if seed is not None:
        if isinstance(seed, bool) or not isinstance(seed, int) or seed < 0:
            raise BadInput(f"--seed {seed}: a seed is a whole number >= 0")
        recipe = dataclasses.replace(recipe, seed=seed)
    return recipe


def train_with_curve(
    name: str,
    out_dir: str | Path,
    steps: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    *,
    heads: int | None = None,
    seed: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    eval_every: int = 0,
    on_eval: Callable[[dict], None] | None = None,
    force: bool = False,
) -> dict:
    """Train toy ``name`` from scratch, write its checkpoint to ``out_dir``, and report the run.

    ``heads`` / ``seed`` override the recipe's head count (d_model kept, so d_head = d_model //
    heads) and seed (initial weights and the training data stream). ``should_stop()`` is asked
    before every step; once it is true, training stops and the checkpoint so far is written
    (``cancelled`` True, ``steps_done`` < ``steps``). ``progress(step, total, loss)`` is called
    every 10 steps. With ``eval_every`` > 0, every ``eval_every`` steps (and after the last one)
    the model is scored on a fixed held-out sample (``HELD_OUT_N`` test-split examples): the point
    ``{"step", "loss", "accuracy", "eos_accuracy", "held_out_loss"}`` goes to the curve and to
    ``on_eval``. ``loss`` is the mean training loss since the previous point (dropout on);
    ``accuracy`` and ``eos_accuracy`` are ``analyses.evaluate``'s accuracy and target accuracy;
    ``held_out_loss`` is the training loss on the held-out sample (dropout off): on Count01 the
    accuracies reach 1.0 within a few hundred steps, the losses show how far training still goes.
    Scoring draws no random numbers, so a run with a curve writes the same weights as one without.
    A non-empty ``out_dir`` is refused (``WouldOverwrite``) unless ``force``: a model trained
    earlier, or a user's own files, are never written over unasked.

    Returns ``{"path", "name", "task", "heads", "seed", "steps", "steps_done", "cancelled",
    "seconds", "batch", "lr", "curve": {"step": [...], "loss": [...], "accuracy": [...],
    "eos_accuracy": [...], "held_out_loss": [...]}}``; ``eos_accuracy`` entries are NaN for a
    task without an EOS target.
    """
    from transformers import AutoModelForCausalLM

    from analyses.toys.checkpoints import build_checkpoint, fast_tokenizer
    from analyses.toys.planted import plant

    recipe = resolve_recipe(name, heads, seed)
    total = steps if steps is not None else recipe.steps
    if isinstance(total, bool) or not isinstance(total, int) or total <= 0:
        raise BadInput("--steps must be positive")
    if isinstance(eval_every, bool) or not isinstance(eval_every, int) or eval_every < 0:
        raise BadInput("eval_every must be a whole number >= 0 (0: no learning curve)")
    check_out_folder(out_dir, force)
    out = _writable_folder(Path(out_dir))
    start = time.monotonic()
    words = list(recipe.words) or vocabulary()
    build_checkpoint(out, recipe.family, words=words, seed=recipe.seed, bos=recipe.bos, specials=recipe.specials,
                     **recipe.shape)
    tokenizer = fast_tokenizer(words, recipe.bos, recipe.specials)
    model = AutoModelForCausalLM.from_pretrained(out).train()
    if recipe.attn_only:
        _freeze_mlps(model)
    if recipe.embed_std:
        _init_embeddings(model, recipe.embed_std, recipe.seed)
    plant(name, model, recipe.seed)  # a planted mechanism, for the recipes that have one (toys/planted.py)
    held_out = _HeldOut(tokenizer, recipe.task) if eval_every else None
    curve: dict[str, list] = {"step": [], "loss": [], "accuracy": [], "eos_accuracy": [], "held_out_loss": []}
    losses: list[float] = []

    def point(step: int) -> None:
        accuracy, eos_accuracy, held_out_loss = held_out.score(model)
        p = {"step": step, "loss": sum(losses) / len(losses) if losses else float("nan"),
             "accuracy": accuracy, "eos_accuracy": eos_accuracy, "held_out_loss": held_out_loss}
        losses.clear()
        for k, v in p.items():
            curve[k].append(v)
        if on_eval is not None:
            on_eval(dict(p))

    params = [p for p in model.parameters() if p.requires_grad]
    opt = torch.optim.AdamW(params, lr=recipe.lr, weight_decay=0.01)
    warmup = recipe.warmup or max(1, total // 20)
    sched = torch.optim.lr_scheduler.LambdaLR(
        opt, lambda s: min(1.0, (s + 1) / warmup) * 0.5 * (1 + math.cos(math.pi * min(s, total) / total))
    )
    torch.manual_seed(recipe.seed)
    done, cancelled = 0, False
    for step in range(total):
        if should_stop is not None and should_stop():
            cancelled = True
            break
        ids, mask, rows, cols, toks = _batch(tokenizer, recipe, step)
        logits = model(input_ids=ids, attention_mask=mask).logits
        loss = F.cross_entropy(logits[rows, cols], toks)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        torch.nn.utils.clip_grad_norm_(params, 1.0)
        opt.step()
        sched.step()
        done = step + 1
        if held_out is not None:
            losses.append(loss.item())
            if done % eval_every == 0 or done == total:
                point(done)
        if progress is not None and (step % 10 == 0 or step == total - 1):
            progress(step + 1, total, loss.item())
    if cancelled and held_out is not None and done and (not curve["step"] or curve["step"][-1] != done):
        point(done)
    model.eval().save_pretrained(out)
    return {
        "path": str(out), "name": name, "task": recipe.task, "heads": recipe.shape.get("n_heads"),
        "seed": recipe.seed, "steps": total, "steps_done": done, "cancelled": cancelled,
        "seconds": time.monotonic() - start, "batch": recipe.batch, "lr": recipe.lr, "curve": curve,
    }


def train(
    name: str,
    out_dir: str | Path,
    steps: int | None = None,
    progress: Callable[[int, int, float], None] | None = None,
    *,
    heads: int | None = None,
    seed: int | None = None,
    should_stop: Callable[[], bool] | None = None,
    eval_every: int = 0,
    on_eval: Callable[[dict], None] | None = None,
    force: bool = False,
) -> Path:
    """Train toy ``name`` from scratch and write its checkpoint to ``out_dir``; return its path.

    ``progress(step, total, loss)`` is called every few steps (the CLI draws a bar with it). The
    other arguments are ``train_with_curve``'s; a stopped run still writes its checkpoint (ask
    ``train_with_curve`` to learn whether it was cut short).
    """
    report = train_with_curve(name, out_dir, steps, progress, heads=heads, seed=seed, should_stop=should_stop,
                              eval_every=eval_every, on_eval=on_eval, force=force)
    return Path(report["path"])
