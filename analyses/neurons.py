"""Next-token neurons and the heads that drive them (Neo, Cohen & Barez 2024, "Interpreting
Context Look-ups in Transformers"; wave2-specs.md section 2). Definitions (docs/neurons.md):

- **Congruence** of neuron n of layer l with token t: ``W_out[n]' . (w_lnf * W_U[:, t])`` minus its
  mean over the vocabulary, where ``W_out[n]'`` is centred over d_model for LayerNorm models (the
  final norm removes that mean anyway) and ``w_lnf`` is the final norm's weight: the neuron's
  direct logit effect per unit of activation at norm scale 1, the DLA convention of ``dla.py``.
  Subtracting the vocabulary mean (TransformerLens's ``center_unembed``) changes no argmax. The
  vocabulary is walked in chunks, so no [d_mlp, vocab] matrix is built on large vocabularies.
- **Word token**: for BPE/SentencePiece vocabularies (some token starts with ``Ġ`` or ``▁``), a
  token that starts with that space marker and is longer than 2 characters (the marker counts:
  ``Ġan`` is a word), the paper's rule; for word-level vocabularies (no marker anywhere, our toys)
  every token that is not a special token.
- **Trimming**: cut a text just after its max-activating position p, then keep the suffix that
  starts at the *latest* index s whose activation at the last token (position p of the text) is
  still >= ratio x the original; starts are tried from p downwards, so no monotonicity is assumed.
- **Head -> neuron attribution** at the last token: ``((h - mean h) / s_ln2) . (w_ln2 * W_in[:, n])``
  with ``h = z_h @ W_O[h]``, ``s_ln2`` the MLP input norm's scale cached on that prompt (no centring
  for RMSNorm): the part of the neuron's pre-activation that the head writes, linear in the head's
  output once the scale is frozen. On gated MLPs ``W_in`` is the gate projection. Heads of layers
  before the neuron's count, and those of its own layer where the MLP reads after attention.
  A head is **active** on a prompt when its attribution exceeds mean + 2 sigma (population sigma)
  over the counted heads of that prompt.
"""

from __future__ import annotations

import heapq
import math
import random
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.models.base import HookedModel, materialized
from analyses.models.hooks import Intervention
from analyses.results import Table, TokenValues

SPACE_MARKERS = ("Ġ", "▁")


# ---- congruence ----------------------------------------------------------------------------

def word_token_mask(tokenizer, d_vocab: int) -> Tensor:
    """[d_vocab] bool: the word tokens (module docstring). Ids past the tokenizer's vocabulary
    (padding rows of the unembedding) are never words."""
    n = min(len(tokenizer), d_vocab)
    pieces = tokenizer.convert_ids_to_tokens(list(range(n)))
    special = set(tokenizer.all_special_ids)
    marked = any(isinstance(p, str) and p.startswith(SPACE_MARKERS) for p in pieces)
    mask = torch.zeros(d_vocab, dtype=torch.bool)
    for i, p in enumerate(pieces):
        if not isinstance(p, str) or i in special:
            continue
        mask[i] = (p.startswith(SPACE_MARKERS) and len(p) > 2) if marked else True
    return mask


def neuron_congruence(model: HookedModel, layer: int, mask: Tensor | None = None,
                      chunk: int | None = None, neurons: Sequence[int] | None = None) -> tuple[Tensor, Tensor]:
    """(best congruence [d_mlp], its token id [d_mlp]) over the tokens in ``mask`` (all if None),
    walking the vocabulary ``chunk`` tokens at a time (default: ~16M products per chunk); only
    the rows of ``neurons`` when given."""
    shape = model.shape
    _check_layer(model, layer)
    _, _, w_out, _ = model.writer_weights(layer)
    w_lnf, _ = model.final_norm_params()
    if neurons is not None:
        w_out = w_out[list(neurons)]
    head = model.unembed_module()
    with materialized(head):  # W_U [vocab, d_model] is read in here: an offloaded head is only here now
        w_u = head.weight.detach()
        device = w_u.device
        w = w_out.float().to(device)  # [neurons, d_model]
        if shape.norm == "layernorm":
            w = w - w.mean(-1, keepdim=True)
        w = w * w_lnf.float().to(device)  # fold the final norm's weight into the neuron side
        vocab = w_u.shape[0]
        chunk = chunk or max(1, 2**24 // max(1, shape.d_mlp))
        best = torch.full((w.shape[0],), -math.inf, device=device)
        arg = torch.zeros(w.shape[0], dtype=torch.long, device=device)
        total = torch.zeros(w.shape[0], device=device)
        for start in range(0, vocab, chunk):
            cols = w_u[start : start + chunk].float()  # [c, d_model]
            c = w @ cols.T  # [neurons, c]
            total += c.sum(-1)
            if mask is not None:
                c = c.masked_fill(~mask[start : start + chunk].to(device)[None], -math.inf)
            value, index = c.max(-1)
            better = value > best
            best = torch.where(better, value, best)
            arg = torch.where(better, index + start, arg)
    if mask is not None and not bool(mask.any()):
        raise BadInput("no token of the vocabulary is a word token")
    return (best - total / vocab).cpu(), arg.cpu()


def congruence_table(model: HookedModel, tokenizer, layers: Sequence[int] | None = None, top: int = 20,
                     words_only: bool = True) -> Table:
    """The ``top`` neurons of each layer by congruence, with the token each predicts."""
    shape = model.shape
    if shape.family == "mamba":
        raise BadInput("Mamba has no MLP neurons")
    layers = list(range(shape.n_layers)) if not layers else [_check_layer(model, lay) for lay in layers]
    mask = word_token_mask(tokenizer, shape.d_vocab) if words_only else None
    labels, cols = [], {"congruence": [], "token": [], "token_id": [], "layer": [], "neuron": []}
    for layer in layers:
        best, arg = neuron_congruence(model, layer, mask)
        for n in best.argsort(descending=True)[:top].tolist():
            labels.append(f"L{layer}N{n}")
            cols["congruence"].append(float(best[n]))
            cols["token"].append(tokenizer.decode([int(arg[n])], clean_up_tokenization_spaces=False))
            cols["token_id"].append(int(arg[n]))
            cols["layer"].append(layer)
            cols["neuron"].append(n)
    meta = {"layers": layers, "top": top, "words_only": words_only,
            "word_tokens": int(mask.sum()) if mask is not None else shape.d_vocab}
    return Table("neuron-congruence", labels, cols, meta)


def _check_layer(model: HookedModel, layer: int) -> int:
    n = model.shape.n_layers
    if not -n <= layer < n:
        raise BadInput(f"layer {layer} is outside the model's {n} layers")
    return layer % n


def check_neuron(model: HookedModel, layer: int, neuron: int) -> tuple[int, int]:
    if model.shape.family == "mamba":
        raise BadInput("Mamba has no MLP neurons")
    layer = _check_layer(model, layer)
    if not 0 <= neuron < model.shape.d_mlp:
        raise BadInput(f"--neuron {neuron}: the MLP has {model.shape.d_mlp} neurons (0..{model.shape.d_mlp - 1})")
    return layer, neuron


def predicted_token(model: HookedModel, layer: int, neuron: int) -> int:
    """The token a neuron's congruence is highest for (over the whole vocabulary)."""
    _, arg = neuron_congruence(model, layer, neurons=[neuron])
    return int(arg[0])


# ---- capturing a few neurons while streaming a corpus ----------------------------------------

def neuron_activations(model: HookedModel, ids: Tensor, layer: int, neurons: Sequence[int],
                       full: bool = False) -> Tensor:
    """``blocks.{layer}.mlp.hook_post[..., neurons]`` [b, s, k] of a right-padded batch. The
    hook keeps only those columns and the run stops after the neuron's block (``full``: runs to
    the logits, for the benchmark's comparison), so a corpus streams at about a forward's cost."""
    kept: list[Tensor] = []
    idx = torch.as_tensor(list(neurons))

    def keep(x: Tensor) -> Tensor:
        kept.append(x[..., idx.to(x.device)].float())
        return x

    iv = Intervention(f"blocks.{layer}.mlp.hook_post", op="fn", fn=keep)
    model.run(ids, interventions=[iv], stop_at_layer=None if full else layer + 1)
    return kept[0]


@dataclass(order=True)
class _Doc:
    act: float
    index: int
    pos: int = field(compare=False)
    ids: list[int] = field(compare=False)


def top_documents(model: HookedModel, batches: Iterable, layer: int, neuron: int, k: int,
                  progress: Callable[[int, int], None] | None = None, total: int = 0,
                  should_stop: Callable[[], bool] | None = None) -> tuple[list[_Doc], int, bool]:
    """The ``k`` documents with the highest max activation of the neuron (ties: earlier document),
    with the position of that max; also how many documents were read and whether it stopped early."""
    heap: list[_Doc] = []
    done, stopped = 0, False
    for batch in batches:
        if should_stop is not None and should_stop():
            stopped = True
            break
        acts = neuron_activations(model, batch.ids, layer, [neuron])[..., 0].cpu()  # [b, s]
        for i, length in enumerate(batch.lengths):
            row = acts[i, :length]
            pos = int(row.argmax())
            doc = _Doc(float(row[pos]), -(batch.start + i), pos, batch.ids[i, :length].tolist())
            if len(heap) < k:
                heapq.heappush(heap, doc)
            elif doc > heap[0]:
                heapq.heapreplace(heap, doc)
        done = batch.start + len(batch.lengths)
        if progress is not None:
            progress(done, total)
    return sorted(heap, reverse=True), done, stopped


def latest_start(acts_by_start: Callable[[list[int]], list[float]], end: int, original: float, ratio: float,
                 first: int = 0, batch: int = 16) -> int:
    """The latest start index s in [first, end] with ``acts_by_start([s])[0] >= ratio * original``
    (the trimming rule); starts are scored ``batch`` at a time from ``end`` down, and ``first``
    when none qualifies (nothing to trim, e.g. a non-positive original activation)."""
    if original <= 0:
        return first
    threshold = ratio * original
    for hi in range(end, first - 1, -batch):
        starts = list(range(hi, max(first, hi - batch + 1) - 1, -1))
        for s, a in zip(starts, acts_by_start(starts)):
            if a >= threshold:
                return s
    return first


@dataclass
class Trimmed:
    """A trimmed prompt: its ids (BOS kept in front where the text had one), the activation of
    each of its tokens, the source document and where the suffix started in it."""

    ids: list[int]
    acts: list[float]
    doc: int
    start: int
    original: float
    full_length: int


def trim(model: HookedModel, doc_ids: list[int], pos: int, layer: int, neuron: int, ratio: float,
         bos: int | None, batch: int = 16) -> tuple[list[int], int]:
    """``doc_ids`` cut after ``pos`` and from its latest start keeping >= ratio of the activation
    at ``pos``; a leading BOS stays. Returns (ids, start)."""
    lead = [doc_ids[0]] if bos is not None and doc_ids and doc_ids[0] == bos else []
    first = len(lead)
    pad = 0

    def acts_at_end(starts: list[int]) -> list[float]:
        rows = [lead + doc_ids[s : pos + 1] for s in starts]
        width = max(len(r) for r in rows)
        ids = torch.tensor([r + [pad] * (width - len(r)) for r in rows])
        acts = neuron_activations(model, ids, layer, [neuron])[..., 0].cpu()
        return [float(acts[i, len(r) - 1]) for i, r in enumerate(rows)]

    original = acts_at_end([first])[0]
    start = latest_start(acts_at_end, pos, original, ratio, first=first, batch=batch)
    return lead + doc_ids[start : pos + 1], start


def max_activating(model: HookedModel, tokenizer, batches: Iterable, layer: int, neuron: int, k: int = 20,
                   ratio: float = 0.8, max_len: int | None = 100, progress=None, total: int = 0,
                   should_stop=None) -> tuple[list[Trimmed], dict]:
    """The neuron's top-``k`` documents, each trimmed (``trim``), dropping trimmed prompts longer
    than ``max_len`` tokens (the paper's 100); and the run's facts."""
    layer, neuron = check_neuron(model, layer, neuron)
    if not 0 < ratio <= 1:
        raise BadInput(f"--ratio {ratio}: a share of the activation in (0, 1]")
    docs, read, stopped = top_documents(model, batches, layer, neuron, k, progress, total, should_stop)
    bos = tokenizer.bos_token_id
    out = []
    dropped = 0
    for d in docs:
        ids, start = trim(model, d.ids, d.pos, layer, neuron, ratio, bos)
        if max_len is not None and len(ids) > max_len:
            dropped += 1
            continue
        acts = neuron_activations(model, torch.tensor([ids]), layer, [neuron])[0, :, 0].cpu().tolist()
        out.append(Trimmed(ids, acts, -d.index, start, d.act, d.pos + 1))
    meta = {"layer": layer, "neuron": neuron, "documents": read, "stopped": stopped, "ratio": ratio,
            "dropped_long": dropped}
    return out, meta


def max_acts_result(tokenizer, prompts: list[Trimmed], meta: dict) -> TokenValues:
    """Trimmed prompts as coloured text: one row per prompt, its tokens' activations."""
    from analyses.tokens import token_strings

    labels = [f"doc {p.doc} act {p.original:.3g}" for p in prompts]
    rows = [{"doc": p.doc, "start": p.start, "max_act": p.original, "last_act": p.acts[-1],
             "kept_tokens": len(p.ids), "cut_at": p.full_length} for p in prompts]
    return TokenValues("neuron-max-acts", labels, [token_strings(tokenizer, p.ids) for p in prompts],
                       [p.acts for p in prompts], "activation", {**meta, "prompts": rows})


# ---- head -> neuron attribution ----------------------------------------------------------------

def mlp_in_column(model: HookedModel, layer: int, neuron: int) -> Tensor:
    """``W_in[:, neuron]`` [d_model]: the input weights of the neuron's pre-activation (the gate's
    on gated MLPs). Adapters do not expose MLP input weights, so this reads the HF module."""
    mlp = model._parts(layer)[3]
    with materialized(mlp):
        if hasattr(mlp, "c_fc"):  # GPT-2 Conv1D: [d_model, d_mlp]
            return mlp.c_fc.weight.detach()[:, neuron].clone()
        for name in ("dense_h_to_4h", "gate_proj"):  # nn.Linear: [d_mlp, d_model]
            if hasattr(mlp, name):
                return getattr(mlp, name).weight.detach()[neuron].clone()
    raise BadInput(f"no MLP input projection known for {model.shape.family}")


def neuron_reader(model: HookedModel, layer: int, neuron: int) -> Tensor:
    """v with ``pre-activation part = (x . v) / s_ln2`` for a residual write x: ``w_ln2 * W_in[:, n]``,
    centred for LayerNorm (so that x's mean drops out)."""
    ln2 = model._parts(layer)[2]
    with materialized(ln2):
        w = ln2.weight.detach().float() + model.shape.norm_offset
    v = w.to(model_device(model)) * mlp_in_column(model, layer, neuron).float().to(model_device(model))
    return v - v.mean() if model.shape.norm == "layernorm" else v


def model_device(model: HookedModel) -> torch.device:
    return model.unembed_module().weight.device


def head_layers(model: HookedModel, layer: int) -> list[int]:
    """Layers whose heads can write into the MLP input of ``layer``."""
    return list(range(layer if model.shape.parallel_attn_mlp else layer + 1))


def _last(x: Tensor, last: Tensor) -> Tensor:
    return x[torch.arange(x.shape[0], device=x.device), last.to(x.device)]


def head_attribution(model: HookedModel, ids: Tensor, lengths: Sequence[int], layer: int, neuron: int) -> Tensor:
    """[b, heads] attribution of every counted head (``head_layers``, layer-major) to the neuron's
    pre-activation at each row's last real token (right-padded ``ids``)."""
    layers = head_layers(model, layer)
    last = torch.tensor([n - 1 for n in lengths])
    z_last: dict[int, Tensor] = {}
    scale: list[Tensor] = []

    def keep_z(lay: int):
        def f(x: Tensor) -> Tensor:
            z_last[lay] = _last(x, last).float()  # [b, heads, d_head]
            return x
        return f

    def keep_scale(x: Tensor) -> Tensor:
        scale.append(_last(x, last).float())  # [b, 1]
        return x

    ivs = [Intervention(f"blocks.{lay}.attn.hook_z", op="fn", fn=keep_z(lay)) for lay in layers]
    ivs.append(Intervention(f"blocks.{layer}.ln2.hook_scale", op="fn", fn=keep_scale))
    model.run(ids, interventions=ivs, stop_at_layer=layer + 1)
    v = neuron_reader(model, layer, neuron)
    out = []
    for lay in layers:
        w_o = model.writer_weights(lay)[0].float().to(v.device)  # [heads, d_head, d_model]
        out.append((z_last[lay].to(v.device) * (w_o @ v)).sum(-1))  # [b, heads]
    return (torch.cat(out, -1) / scale[0].to(v.device)).cpu()


def head_labels(model: HookedModel, layer: int) -> list[str]:
    return [f"L{lay}H{h}" for lay in head_layers(model, layer) for h in range(model.shape.n_heads)]


def active_heads(attr: Tensor) -> Tensor:
    """[b, heads] bool: attribution > mean + 2 sigma over the heads of that prompt (population sigma)."""
    mean = attr.mean(-1, keepdim=True)
    std = attr.std(-1, keepdim=True, unbiased=False)
    return attr > mean + 2 * std


def prompts_attribution(model: HookedModel, prompts: list[list[int]], layer: int, neuron: int,
                        batch: int = 16, pad: int = 0) -> Tensor:
    """``head_attribution`` of many prompts, ``batch`` at a time: [n, heads]."""
    from analyses.tokens import pad_batch

    out = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        ids, _ = pad_batch(chunk, pad)
        out.append(head_attribution(model, ids, [len(p) for p in chunk], layer, neuron))
    return torch.cat(out) if out else torch.zeros(0, len(head_labels(model, layer)))


def heads_table(model: HookedModel, attr: Tensor, layer: int, neuron: int, low: float = 0.25,
                high: float = 0.75, meta: dict | None = None) -> Table:
    """Per head: mean attribution, how often it is active, and whether that rate is in [low, high]."""
    labels = head_labels(model, layer)
    active = active_heads(attr).float()
    rate = active.mean(0) if len(attr) else torch.zeros(len(labels))
    cols = {"mean_attribution": attr.mean(0).tolist() if len(attr) else [0.0] * len(labels),
            "active_rate": rate.tolist(),
            "selected": [bool(low <= r <= high) for r in rate.tolist()]}
    return Table("neuron-heads", labels, cols, {"layer": layer, "neuron": neuron, "n_prompts": len(attr),
                                                  "band": [low, high], **(meta or {})})


# ---- explanations ---------------------------------------------------------------------------

def balanced_accuracy(pred: Sequence[bool], truth: Sequence[bool]) -> float:
    """(TPR + TNR) / 2; NaN when ``truth`` is all one class (the paper skips such sets)."""
    pos = sum(truth)
    neg = len(truth) - pos
    if pos == 0 or neg == 0:
        return float("nan")
    tp = sum(p and t for p, t in zip(pred, truth))
    tn = sum((not p) and (not t) for p, t in zip(pred, truth))
    return (tp / pos + tn / neg) / 2


def ngrams(tokens: Sequence[str], max_n: int = 2) -> set[tuple[str, ...]]:
    return {tuple(tokens[i : i + n]) for n in range(1, max_n + 1) for i in range(len(tokens) - n + 1)}


@dataclass(frozen=True)
class Rule:
    """"active iff the prompt contains (``present``) / lacks the n-gram ``gram``"."""

    gram: tuple[str, ...]
    present: bool = True

    def __call__(self, tokens: Sequence[str]) -> bool:
        g = len(self.gram)
        found = any(tuple(tokens[i : i + g]) == self.gram for i in range(len(tokens) - g + 1))
        return found == self.present

    def text(self) -> str:
        return ("contains " if self.present else "lacks ") + repr("".join(self.gram))


def fit_rule(prompts: list[list[str]], labels: list[bool], max_n: int = 2) -> tuple[Rule | None, float]:
    """The n-gram rule with the best balanced accuracy on (prompts, labels); ties go to the
    shorter n-gram, then the earlier-seen one. (None, NaN) when the labels are all one class."""
    if all(labels) or not any(labels):
        return None, float("nan")
    seen: dict[tuple[str, ...], list[bool]] = {}
    for i, toks in enumerate(prompts):
        for g in ngrams(toks, max_n):
            seen.setdefault(g, [False] * len(prompts))[i] = True
    best, best_score = None, -1.0
    for g in sorted(seen, key=len):
        has = seen[g]
        for present in (True, False):
            score = balanced_accuracy([h == present for h in has], labels)
            if score > best_score:
                best, best_score = Rule(g, present), score
    return best, best_score


def shuffled_baseline(pred: Sequence[bool], truth: Sequence[bool], n: int = 200, seed: int = 0) -> tuple[float, float]:
    """(mean balanced accuracy of ``pred`` against shuffled ``truth``, share of shuffles scoring at
    least the true score: a permutation p-value)."""
    real = balanced_accuracy(pred, truth)
    if math.isnan(real):
        return float("nan"), float("nan")
    rng = random.Random(seed)
    labels = list(truth)
    scores = []
    for _ in range(n):
        rng.shuffle(labels)
        scores.append(balanced_accuracy(pred, labels))
    return sum(scores) / n, (1 + sum(s >= real for s in scores)) / (n + 1)


def split_indices(n: int, test_share: float, seed: int) -> tuple[list[int], list[int]]:
    """A seeded train/test split of range(n)."""
    order = list(range(n))
    random.Random(seed).shuffle(order)
    k = max(1, round(n * test_share)) if n > 1 else 0
    return sorted(order[k:]), sorted(order[:k])


# ---- head ablation ----------------------------------------------------------------------------

def token_prob(model: HookedModel, prompts: list[list[int]], token: int, ablate: tuple[int, int] | None = None,
               batch: int = 16, pad: int = 0) -> Tensor:
    """p(token) at each prompt's last token [n], with head (layer, head) zeroed (its ``hook_z``:
    the same as zeroing its values, and per query head on GQA models) when ``ablate`` is given."""
    from analyses.tokens import pad_batch

    out = []
    for i in range(0, len(prompts), batch):
        chunk = prompts[i : i + batch]
        ids, _ = pad_batch(chunk, pad)
        last = torch.tensor([len(p) - 1 for p in chunk])
        ivs = [] if ablate is None else [Intervention(f"blocks.{ablate[0]}.attn.hook_z", op="zero", head=ablate[1])]
        logits = model.run(ids, interventions=ivs, logit_pos=last).logits[:, 0].float()
        out.append(logits.log_softmax(-1)[:, token].cpu())
    return torch.cat(out).exp() if out else torch.zeros(0)


def ks_2samp(a: Sequence[float], b: Sequence[float]) -> tuple[float, float]:
    """Two-sample Kolmogorov-Smirnov (D = sup |F_a - F_b|, and its p-value: exact for small
    samples, asymptotic otherwise), by scipy. NaN for an empty sample."""
    if len(a) == 0 or len(b) == 0:
        return float("nan"), float("nan")
    from scipy import stats

    result = stats.ks_2samp(a, b)
    return float(result.statistic), float(result.pvalue)


# ---- the pipeline the corpus analyses share --------------------------------------------------

def corpus_prompts(model: HookedModel, tokenizer, layer: int, neuron: int, corpus: str | None, task: str | None,
                   n: int | None, seed: int, batch: int, prepend_bos: bool | None, top: int, ratio: float,
                   max_len: int | None, progress=None, should_stop=None) -> tuple[list[Trimmed], dict]:
    """The neuron's trimmed max-activating prompts from a corpus file or a task (``analyses.corpus``)."""
    from analyses.corpus import corpus_batches, corpus_texts, count_texts

    total = count_texts(corpus, task, n)
    texts = corpus_texts(corpus, task, n, seed)
    n_ctx = model.shape.n_ctx or 2048
    batches = corpus_batches(tokenizer, texts, batch, n_ctx, prepend_bos)
    prompts, meta = max_activating(model, tokenizer, batches, layer, neuron, top, ratio, max_len, progress,
                                   total, should_stop)
    if not prompts:
        raise BadInput("no prompt left: the corpus is empty or every trimmed prompt is longer than --max-len")
    return prompts, {**meta, "source": corpus or f"task:{task}"}


def explain_heads(model: HookedModel, tokenizer, prompts: list[Trimmed], layer: int, neuron: int,
                  test_share: float = 0.5, seed: int = 0, max_n: int = 2, llm=None, low: float = 0.25,
                  high: float = 0.75) -> Table:
    """For each head active on ``low``..``high`` of the prompts: the n-gram rule that best
    separates its active from its inactive train prompts, scored by balanced accuracy on the
    held-out ones against shuffled labels; with ``llm`` (an ``analyses.llm.Explainer``), the
    model's explanation and its classification score too."""
    from analyses.tokens import token_strings

    attr = prompts_attribution(model, [p.ids for p in prompts], layer, neuron)
    active = active_heads(attr)
    rate = active.float().mean(0)
    labels = head_labels(model, layer)
    texts = [token_strings(tokenizer, p.ids) for p in prompts]
    train, test = split_indices(len(prompts), test_share, seed)
    rows: dict[str, list] = {k: [] for k in ("balanced_accuracy", "shuffled_baseline", "p_shuffled", "explanation",
                                             "train_accuracy", "active_rate", "n_train", "n_test", "test_active")}
    if llm is not None:
        rows.update(llm_balanced_accuracy=[], llm_explanation=[])
    token = tokenizer.decode([predicted_token(model, layer, neuron)], clean_up_tokenization_spaces=False)
    out_labels = []
    text = [tokenizer.decode(p.ids, skip_special_tokens=True) for p in prompts] if llm is not None else []
    for h in selected_heads(rate, labels, low, high):
        label = labels[h]
        y = active[:, h].tolist()
        rule, train_score = fit_rule([texts[i] for i in train], [y[i] for i in train], max_n)
        truth = [y[i] for i in test]
        pred = [rule(texts[i]) for i in test] if rule is not None else [False] * len(test)
        score = balanced_accuracy(pred, truth)
        base, p = shuffled_baseline(pred, truth, seed=seed)
        out_labels.append(label)
        for k, v in (("balanced_accuracy", score), ("shuffled_baseline", base), ("p_shuffled", p),
                     ("explanation", rule.text() if rule else "(train labels all one class)"),
                     ("train_accuracy", train_score), ("active_rate", float(rate[h])), ("n_train", len(train)),
                     ("n_test", len(test)), ("test_active", sum(truth))):
            rows[k].append(v)
        if llm is not None:
            explanation = llm.explain(token, [text[i] for i in train if y[i]], [text[i] for i in train if not y[i]])
            llm_pred = [llm.classify(explanation, text[i]) for i in test]
            rows["llm_explanation"].append(explanation)
            rows["llm_balanced_accuracy"].append(balanced_accuracy(llm_pred, truth))
    meta = {"layer": layer, "neuron": neuron, "token": token, "n_prompts": len(prompts), "test_share": test_share,
            "max_n": max_n, "llm": llm.describe() if llm is not None else None}
    return Table("neuron-explain", out_labels, rows, meta)


def selected_heads(rate: Tensor, labels: list[str], low: float, high: float) -> list[int]:
    """The heads active on ``low``..``high`` of the texts (what gets explained and ablated); a
    clear error when there is none, naming the most active heads: on a neuron's top texts alone a
    head that drives it can be active on all of them, and then nothing separates its texts."""
    chosen = [i for i in range(len(labels)) if low <= float(rate[i]) <= high]
    if not chosen:
        top = sorted(range(len(labels)), key=lambda i: -float(rate[i]))[:3]
        rates = ", ".join(f"{labels[i]} {float(rate[i]):.2f}" for i in top)
        raise BadInput(f"no head is active on {low:.0%}-{high:.0%} of the texts (most active: {rates}); "
                       "name heads with --heads, or take more texts with --top so that some are inactive")
    return chosen


def ablation_table(model: HookedModel, prompts: list[Trimmed], layer: int, neuron: int, token: int,
                   heads: list[str] | None = None, low: float = 0.25, high: float = 0.75) -> Table:
    """Per head (``heads`` by label, default the selected ones): Δp = p(token) clean - p(token) with
    the head zeroed, averaged over the prompts where it is active and where it is not, and the
    two-sample KS test between those two sets of Δp; a last row ``all`` pools every head's.
    Also Δ log p = log p clean - log p ablated (a change that a p near 0 or 1 hides in Δp)."""
    ids = [p.ids for p in prompts]
    attr = prompts_attribution(model, ids, layer, neuron)
    active = active_heads(attr)
    labels = head_labels(model, layer)
    rate = active.float().mean(0)
    if heads is None:
        chosen = selected_heads(rate, labels, low, high)
    else:
        unknown = [h for h in heads if h not in labels]
        if unknown:
            raise BadInput(f"--heads: {', '.join(unknown)} not among the heads that feed L{layer}: "
                           f"{labels[0]} .. {labels[-1]}")
        chosen = [labels.index(h) for h in heads]
    clean = token_prob(model, ids, token)
    rows: dict[str, list] = {k: [] for k in ("ks_d", "ks_p", "dp_active", "dp_inactive", "dlogp_active",
                                             "dlogp_inactive", "n_active", "n_inactive", "active_rate")}
    pooled: tuple[list, list, list, list] = ([], [], [], [])
    n_heads = model.shape.n_heads
    for h in chosen:
        ablated = token_prob(model, ids, token, ablate=(h // n_heads, h % n_heads))
        dp = (clean - ablated).tolist()
        dlogp = (clean.log() - ablated.log()).tolist()
        flags = active[:, h].tolist()
        parts = ([d for d, f in zip(dp, flags) if f], [d for d, f in zip(dp, flags) if not f],
                 [d for d, f in zip(dlogp, flags) if f], [d for d, f in zip(dlogp, flags) if not f])
        for acc, part in zip(pooled, parts):
            acc += part
        _ks_row(rows, *parts, float(rate[h]))
    _ks_row(rows, *pooled, float("nan"))
    meta = {"layer": layer, "neuron": neuron, "token_id": token, "n_prompts": len(prompts),
            "clean_p_mean": float(clean.mean()) if len(clean) else float("nan")}
    return Table("neuron-ablation", [labels[h] for h in chosen] + ["all"], rows, meta)


def _ks_row(rows: dict[str, list], a: list[float], b: list[float], la: list[float], lb: list[float],
            rate: float) -> None:
    """KS on Δp (the paper's measure); the mean Δ log p too, which a saturated p(token) hides."""
    d, p = ks_2samp(a, b)
    mean = lambda xs: sum(xs) / len(xs) if xs else float("nan")
    for k, v in (("ks_d", d), ("ks_p", p), ("dp_active", mean(a)), ("dp_inactive", mean(b)),
                 ("dlogp_active", mean(la)), ("dlogp_inactive", mean(lb)), ("n_active", len(a)),
                 ("n_inactive", len(b)), ("active_rate", rate)):
        rows[k].append(v)
