"""Train a small SAE on a model's activations at one hook (``workbench train sae``), offline, on CPU.

The activations are every real token position of a task's training prompts (or a corpus file),
collected once (a toy's are a few MB). Two sparsity schemes:

- ``l1``: a ReLU SAE with loss ``‖x - x̂‖² + λ Σ_i f_i ‖W_dec[i]‖`` (SAELens's standard loss,
  decoder norms inside the penalty so shrinking W_dec does not cheat it);
- ``topk``: a TopK SAE (only the ``k`` largest pre-activations kept) with the plain MSE loss.

W_dec's rows start random at norm 0.1 with W_enc = W_decᵀ, b_dec at the activations' mean; the MSE is
divided by the activations' variance, so λ does not depend on their scale. The report:
the fraction of variance explained on held-out activations (the task's test prompts),
``FVE = 1 - Σ‖x - x̂‖² / Σ‖x - mean x‖²``, the mean number of active features per token (L0),
and the features that never fire on the held-out set.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.corpus import PromptSet, corpus_texts, corpus_batches
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.sae.features import _stop_after, check_hook
from analyses.sae.model import SAE


@dataclass(frozen=True)
class SaeRecipe:
    """What to train: dictionary size, sparsity (``l1`` with ``l1`` coefficient, or ``topk`` with
    ``k``), steps, batch of activation vectors, learning rate, seed, texts to collect from."""

    d_sae: int = 256
    sparsity: str = "l1"
    l1: float = 3e-3
    k: int = 8
    steps: int = 3000
    batch: int = 512
    lr: float = 2e-3
    seed: int = 0
    texts: int = 4000


def collect(model: HookedModel, tokenizer, hook: str, prompts: PromptSet) -> Tensor:
    """Activations [tokens, d] at ``hook`` at every real position of ``prompts`` (fp32, CPU)."""
    if prompts.task:  # the training prompts: the held-out ones measure the SAE
        from analyses.tasks import task_examples

        texts = [e.prompt + e.answer for e in task_examples(prompts.task, prompts.n or 256, prompts.seed,
                                                              split="train")]
    else:
        texts = list(corpus_texts(prompts.corpus, None, prompts.n, prompts.seed))
    stop = _stop_after(model, hook)
    rows = []
    for batch in corpus_batches(tokenizer, texts, prompts.batch, model.shape.n_ctx or 2048, prompts.prepend_bos):
        x = model.run(batch.ids, capture=[hook], stop_at_layer=stop).cache[hook].float().cpu()
        rows += [x[i, :n] for i, n in enumerate(batch.lengths)]
    if not rows:
        raise BadInput("no activations: the texts have no tokens")
    return torch.cat(rows)


def held_out(model: HookedModel, tokenizer, hook: str, task: str | None, n: int) -> Tensor | None:
    """The task's test prompts' activations (None without a task)."""
    if not task:
        return None
    from analyses.tasks import task_examples

    texts = [e.prompt + e.answer for e in task_examples(task, n, 1, split="test")]
    stop = _stop_after(model, hook)
    rows = []
    for batch in corpus_batches(tokenizer, texts, 64, model.shape.n_ctx or 2048):
        x = model.run(batch.ids, capture=[hook], stop_at_layer=stop).cache[hook].float().cpu()
        rows += [x[i, :n] for i, n in enumerate(batch.lengths)]
    return torch.cat(rows)


def fve(sae: SAE, x: Tensor) -> float:
    """Fraction of variance of ``x`` [n, d] explained by the SAE's reconstruction."""
    with torch.no_grad():
        err = (x - sae.decode(sae.encode(x))).pow(2).sum()
        var = (x - x.mean(0)).pow(2).sum()
    return float(1 - err / var)


def train_sae(acts: Tensor, hook: str, recipe: SaeRecipe, progress: Callable[[int, int, float], None] | None = None,
              should_stop: Callable[[], bool] | None = None) -> SAE:
    """An SAE trained on ``acts`` [n, d] (see the module doc)."""
    if recipe.sparsity not in ("l1", "topk"):
        raise BadInput(f"--sparsity must be l1 or topk (got {recipe.sparsity!r})")
    if recipe.sparsity == "topk" and not 1 <= recipe.k <= recipe.d_sae:
        raise BadInput(f"--k {recipe.k}: between 1 and the dictionary size {recipe.d_sae}")
    gen = torch.Generator().manual_seed(recipe.seed)
    n, d = acts.shape
    w_dec = torch.randn(recipe.d_sae, d, generator=gen)
    w_dec /= w_dec.norm(dim=1, keepdim=True)
    params = {"W_enc": w_dec.T.clone() * 0.1, "b_enc": torch.zeros(recipe.d_sae), "W_dec": w_dec * 0.1,
              "b_dec": acts.mean(0).clone()}
    for p in params.values():
        p.requires_grad_(True)
    arch = "relu" if recipe.sparsity == "l1" else "topk"
    sae = SAE(**params, hook_name=hook, architecture=arch, k=recipe.k if arch == "topk" else None)
    opt = torch.optim.Adam(params.values(), lr=recipe.lr)
    scale = (acts - acts.mean(0)).pow(2).sum(1).mean()  # MSE relative to the variance: lambda is scale-free
    for step in range(recipe.steps):
        if should_stop is not None and should_stop():
            break
        lr = recipe.lr * min(1.0, 5 * (recipe.steps - step) / recipe.steps)  # linear decay over the last 20 %
        for group in opt.param_groups:
            group["lr"] = lr
        idx = torch.randint(0, n, (recipe.batch,), generator=gen)
        x = acts[idx]
        f = sae.encode(x)
        mse = (sae.decode(f) - x).pow(2).sum(1).mean() / scale
        loss = mse
        if arch == "relu":
            l1_coeff = recipe.l1 * min(1.0, step / max(1, recipe.steps // 10))  # warm up the penalty
            loss = mse + l1_coeff * (f * params["W_dec"].norm(dim=1)).sum(1).mean()
        opt.zero_grad()
        loss.backward()
        opt.step()
        if progress is not None and (step % 50 == 0 or step == recipe.steps - 1):
            progress(step + 1, recipe.steps, float(mse.detach()))
    for p in params.values():
        p.requires_grad_(False)
    return sae


def train_and_report(model: HookedModel, tokenizer, hook: str, recipe: SaeRecipe, task: str | None,
                     corpus: str | None, progress=None, should_stop=None) -> tuple[SAE, dict]:
    """Collect, train and measure: the SAE and its report (FVE, L0, dead features, time)."""
    if hook not in model.hook_names():
        raise BadInput(f"--hook {hook}: not a hook of this {model.shape.family} model (see docs/hooks.md)")
    torch.manual_seed(recipe.seed)
    start = time.perf_counter()
    acts = collect(model, tokenizer, hook, PromptSet(corpus, task, recipe.texts, recipe.seed, 64))
    sae = train_sae(acts, hook, recipe, progress, should_stop)
    test = held_out(model, tokenizer, hook, task, 512)
    test = acts if test is None else test
    with torch.no_grad():
        f = sae.encode(test)
    report = {"activations": int(acts.shape[0]), "held_out": int(test.shape[0]),
              "fve_held_out": round(fve(sae, test), 4),
              "fve_train": round(fve(sae, acts), 4), "l0": round(float((f > 0).sum(1).float().mean()), 2),
              "dead_features": int(((f > 0).sum(0) == 0).sum()), "seconds": round(time.perf_counter() - start, 1)}
    check_hook(model, sae)
    return sae, report
