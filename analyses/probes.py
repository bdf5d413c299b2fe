"""Linear probes: does a layer's activation at a position linearly encode a label?

Data: a task's prompts labelled by their variant (IOI's ABBA / BABA, lookup's marker / plain) or
their answer, or a JSONL file of ``{"text": ..., "label": ...}`` rows. Activations at one site of
every layer are collected batched, capturing only those hooks and only the asked positions
(negative positions count from each text's own end). Per (layer, position): a logistic
regression (softmax over the labels; L2 penalty ``l2/2 ‖W‖²`` on the standardised features, no
penalty on the bias), fitted by L-BFGS in float64 on a fixed seeded train split, scored by
accuracy on the held-out rest.

The probe's direction (binary labels) is its weight vector in activation units, ``w / std``,
returned unit-norm with the layer it came from: a steering vector, or a direction to project out
(``analyses.steering``: ``--steer RUN*SCALE``, ``--project-out RUN``).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import torch
from torch import Tensor

from analyses.corpus import Progress, Stop
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.results import Series

SITES = ("resid_pre", "resid_mid", "resid_post", "attn_out", "mlp_out")
_HOOKS = {"resid_pre": "hook_resid_pre", "resid_mid": "hook_resid_mid", "resid_post": "hook_resid_post",
          "attn_out": "hook_attn_out", "mlp_out": "hook_mlp_out"}


def labelled_texts(task: str | None, data: str | None, label: str, n: int, seed: int) -> tuple[list[str], list[str]]:
    """(texts, labels) from a task (its prompts, labelled by ``label``: "variant" or "answer") or a JSONL file."""
    if bool(task) == bool(data):
        raise BadInput("give one labelled dataset: --task NAME or --data FILE (JSONL with \"text\" and \"label\")")
    if task:
        from analyses.tasks import task_examples

        examples = task_examples(task, n, seed)
        return [e.prompt for e in examples], [getattr(e, label) for e in examples]
    return _jsonl(Path(data), n)


def _jsonl(path: Path, n: int) -> tuple[list[str], list[str]]:
    if not path.is_file():
        raise BadInput(f"--data: no such file {str(path)!r}")
    texts, labels = [], []
    with open(path, encoding="utf-8") as f:
        for number, line in enumerate(f, 1):
            if not line.strip():
                continue
            try:
                row = json.loads(line)
            except json.JSONDecodeError as e:
                raise BadInput(f"{path}:{number}: not JSON ({e.msg})") from None
            if not isinstance(row, dict) or not isinstance(row.get("text"), str) or "label" not in row:
                raise BadInput(f"{path}:{number}: a row needs a \"text\" string and a \"label\"")
            texts.append(row["text"])
            labels.append(str(row["label"]))
            if len(texts) >= n:
                break
    return texts, labels


def collect(model: HookedModel, tokenizer, texts: list[str], hooks: list[str], positions: list[int], batch: int,
            prepend_bos: bool | None = None, progress: Progress = None, should_stop: Stop = None) -> Tensor:
    """Activations [len(hooks), len(positions), texts, d] (fp32, CPU) at ``hooks``, only ``positions``
    of each text kept (negative: from its end), the run stopped after the last hook's block."""
    from analyses.corpus import corpus_batches

    stop = max(int(h.split(".")[1]) for h in hooks) + 1
    stop = None if stop >= model.shape.n_layers else stop
    out: list[Tensor] = []
    done = 0
    for b in corpus_batches(tokenizer, texts, batch, model.shape.n_ctx or 2048, prepend_bos):
        if should_stop is not None and should_stop():
            from analyses.errors import Cancelled

            raise Cancelled()
        lengths = torch.tensor(b.lengths)
        at = []
        for p in positions:
            idx = lengths + p if p < 0 else torch.full_like(lengths, p)
            if bool(((idx < 0) | (idx >= lengths)).any()):
                raise BadInput(f"--positions {p}: outside a text of {int(lengths.min())} tokens")
            at.append(idx)
        at_t = torch.stack(at)  # [P, b]
        cache = model.run(b.ids, capture=hooks, stop_at_layer=stop).cache
        rows = torch.arange(len(b.lengths))
        out.append(torch.stack([torch.stack([cache[h][rows, at_t[j].to(cache[h].device)].float().cpu()
                                             for j in range(len(positions))]) for h in hooks]))
        done += len(b.texts)
        if progress is not None:
            progress(done, len(texts))
    if len(texts) and sum(x.shape[2] for x in out) != len(texts):
        raise BadInput("a text has no tokens; every text of a probe's dataset needs at least one")
    return torch.cat(out, 2)


def split(n: int, test_share: float, seed: int) -> tuple[Tensor, Tensor]:
    """(train indices, test indices): a seeded permutation, the last ``test_share`` held out."""
    if not 0 < test_share < 1:
        raise BadInput(f"--test-share {test_share}: a share in (0, 1)")
    perm = torch.randperm(n, generator=torch.Generator().manual_seed(seed))
    n_test = max(1, round(n * test_share))
    if n - n_test < 2:
        raise BadInput(f"{n} texts are too few to train and test a probe")
    return perm[n_test:], perm[:n_test]


@dataclass
class Probe:
    """A fitted probe: standardisation (mean, std), weights [d, c] and bias [c] on standardised
    features (c = 1 for two labels: the logit of ``classes[1]``), and its classes."""

    mean: Tensor
    std: Tensor
    W: Tensor
    b: Tensor
    classes: list[str]

    def logits(self, x: Tensor) -> Tensor:
        z = (x.double() - self.mean) / self.std
        return z @ self.W + self.b

    def predict(self, x: Tensor) -> Tensor:
        lo = self.logits(x)
        return (lo[:, 0] > 0).long() if lo.shape[1] == 1 else lo.argmax(1)

    def direction(self) -> Tensor:
        """Unit direction in activation units toward ``classes[1]`` (two labels only)."""
        w = self.W[:, 0] / self.std
        return (w / w.norm()).float()


def fit_probe(x: Tensor, y: Tensor, classes: list[str], l2: float, max_iter: int = 200) -> Probe:
    """Logistic regression of labels ``y`` (indices into ``classes``) on ``x`` [n, d] (module doc)."""
    x = x.double()
    mean, std = x.mean(0), x.std(0, unbiased=False).clamp(min=1e-6)
    z = (x - mean) / std
    c = 1 if len(classes) == 2 else len(classes)
    W = torch.zeros(z.shape[1], c, dtype=torch.float64, requires_grad=True)
    b = torch.zeros(c, dtype=torch.float64, requires_grad=True)
    opt = torch.optim.LBFGS([W, b], lr=1, max_iter=max_iter, tolerance_grad=1e-10, tolerance_change=1e-12,
                            history_size=20, line_search_fn="strong_wolfe")

    def loss() -> Tensor:
        opt.zero_grad()
        lo = z @ W + b
        if c == 1:
            ce = torch.nn.functional.binary_cross_entropy_with_logits(lo[:, 0], y.double())
        else:
            ce = torch.nn.functional.cross_entropy(lo, y)
        total = ce + 0.5 * l2 * W.pow(2).sum()
        total.backward()
        return total

    with torch.enable_grad():
        opt.step(loss)
    return Probe(mean, std, W.detach(), b.detach(), classes)


def probe_layers(model: HookedModel, tokenizer, texts: list[str], labels: list[str], site: str, positions: list[int],
                 layers: list[int] | None, test_share: float, seed: int, l2: float, batch: int,
                 prepend_bos: bool | None = None, progress: Progress = None, should_stop: Stop = None) -> Series:
    """Held-out accuracy of a probe per layer (x) and position (one line each), with the majority
    baseline; the best probe's direction (two labels) in ``meta["direction"]``."""
    if site not in SITES:
        raise BadInput(f"--site must be one of {', '.join(SITES)}")
    classes = sorted(set(labels))
    if len(classes) < 2:
        raise BadInput(f"every text has the label {classes[0] if classes else None!r}: a probe needs two or more")
    n_layers = model.shape.n_layers
    if layers is None:
        layers = list(range(n_layers))
    bad = [layer for layer in layers if not -n_layers <= layer < n_layers]
    if bad:
        raise BadInput(f"--layers: no layer {bad[0]} (the model has {n_layers}: 0..{n_layers - 1})")
    layers = [layer % n_layers for layer in layers]
    hooks = [f"blocks.{layer}.{_HOOKS[site]}" for layer in layers]
    missing = [h for h in hooks if h not in model.hook_names()]
    if missing:
        raise BadInput(f"--site {site}: this {model.shape.family} model has no {missing[0]} (docs/hooks.md)")
    acts = collect(model, tokenizer, texts, hooks, positions, batch, prepend_bos, progress, should_stop)
    y = torch.tensor([classes.index(label) for label in labels])
    train, test = split(len(texts), test_share, seed)
    majority = float((y[test] == torch.bincount(y[train], minlength=len(classes)).argmax()).double().mean())
    lines: dict[str, list[float]] = {}
    train_acc: dict[str, list[float]] = {}
    best = (-1.0, None, None, None)
    for j, p in enumerate(positions):
        name = f"pos {p}"
        lines[name], train_acc[name] = [], []
        for i, layer in enumerate(layers):
            x = acts[i, j]
            probe = fit_probe(x[train], y[train], classes, l2)
            acc = float((probe.predict(x[test]) == y[test]).double().mean())
            lines[name].append(acc)
            train_acc[name].append(float((probe.predict(x[train]) == y[train]).double().mean()))
            if acc > best[0]:
                best = (acc, layer, p, probe)
    meta = {"site": site, "classes": classes, "n_train": len(train), "n_test": len(test), "seed": seed, "l2": l2,
            "test_share": test_share, "majority_baseline": majority, "train_accuracy": train_acc,
            "counts": {c: labels.count(c) for c in classes}}
    acc, layer, p, probe = best
    meta["best"] = {"layer": layer, "pos": p, "accuracy": acc, "hook": f"blocks.{layer}.{_HOOKS[site]}"}
    if len(classes) == 2:
        meta["direction"] = {"hook": meta["best"]["hook"], "pos": p, "toward": classes[1],
                             "vector": probe.direction().tolist()}
    return Series("probe", [str(layer) for layer in layers], lines, "layer", meta)

