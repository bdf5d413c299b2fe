"""SAE features over a corpus, streamed batch by batch: one feature's top-activating texts (trimmed
like a neuron's: analyses.neurons.max_acts), and every feature's firing rate, largest activation
and top documents.

Memory: a batch's feature activations [b, s, d_sae] are the largest tensor ever held; across
batches only per-feature sums and a running top-k [d_sae, k] are kept, merged with each batch's
per-document maxima by one ``topk``. Never a [texts x positions x features] tensor.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.corpus import CorpusLoop
from analyses.errors import BadInput
from analyses.models.base import HookedModel
from analyses.neurons.max_acts import max_acts_result, top_documents, trim_documents
from analyses.results import Table, TokenValues
from analyses.sae.features import _stop_after, check_hook
from analyses.sae.model import SAE


def feature_reader(model: HookedModel, sae: SAE, feature: int) -> Callable[[Tensor], Tensor]:
    """``ids`` [b, s] -> feature ``feature``'s activation [b, s], the run stopped after the SAE's hook."""
    check_hook(model, sae)
    if not 0 <= feature < sae.d_sae:
        raise BadInput(f"--feature {feature}: the SAE has {sae.d_sae} features (0..{sae.d_sae - 1})")
    stop = _stop_after(model, sae.hook_name)

    def acts(ids: Tensor) -> Tensor:
        x = model.run(ids, capture=[sae.hook_name], stop_at_layer=stop).cache[sae.hook_name]
        s = sae.to(x.device)
        if sae.architecture == "topk":  # a feature's value depends on the others' ranks
            return s.encode(x)[..., feature]
        col = _one_feature_pre(s, x, feature)  # one column of W_enc, not all of them
        out = col.clamp(min=0)
        return out * (col > s.threshold[feature]) if sae.architecture == "jumprelu" else out

    return acts


def _one_feature_pre(sae: SAE, x: Tensor, feature: int) -> Tensor:
    x = x.float()
    if sae.apply_b_dec_to_input:
        x = x - sae.b_dec
    return x @ sae.W_enc[:, feature] + sae.b_enc[feature]


def feature_texts(model: HookedModel, tokenizer, sae: SAE, feature: int, loop: CorpusLoop, top: int, ratio: float,
                  max_len: int | None) -> TokenValues:
    """The feature's ``top`` documents by max activation, each trimmed to its shortest suffix keeping
    ``ratio`` of it, as coloured text (the neuron analysis's rule and result, for a feature)."""
    if not 0 < ratio <= 1:
        raise BadInput(f"--ratio {ratio}: a share of the activation in (0, 1]")
    acts_of = feature_reader(model, sae, feature)
    docs, read, stopped = top_documents(model, loop, 0, 0, top, acts_of=acts_of)
    out, dropped = trim_documents(model, docs, 0, 0, ratio, max_len, tokenizer.bos_token_id, acts_of=acts_of)
    if not out:
        raise BadInput("no text left: the corpus is empty or every trimmed text is longer than --max-len")
    meta = {"feature": feature, "sae": sae.describe(), "sae_path": sae.path, "hook": sae.hook_name,
            "documents": read, "stopped": stopped, "ratio": ratio, "dropped_long": dropped}
    result = max_acts_result(tokenizer, out, meta)
    result.analysis = "sae-max-acts"
    return result


@dataclass
class FeatureStats:
    """Per feature over the corpus: active tokens, tokens read, the sum of its activations, and
    its top-k documents by max activation (values and document indices, [d_sae, k], -1 unfilled)."""

    active: Tensor
    tokens: int
    total: Tensor
    top_values: Tensor
    top_docs: Tensor
    texts: dict[int, str]


def corpus_stats(model: HookedModel, sae: SAE, loop: CorpusLoop, k: int = 5) -> FeatureStats:
    """Every feature's firing count, mean and top-``k`` documents, streamed (see the module doc)."""
    check_hook(model, sae)
    stop = _stop_after(model, sae.hook_name)
    n = sae.d_sae
    active = torch.zeros(n, dtype=torch.long)
    total = torch.zeros(n, dtype=torch.float64)
    top_v = torch.full((n, k), -float("inf"))
    top_d = torch.full((n, k), -1, dtype=torch.long)
    texts: dict[int, str] = {}
    tokens = 0
    for batch in loop:
        x = model.run(batch.ids, capture=[sae.hook_name], stop_at_layer=stop).cache[sae.hook_name]
        s = sae.to(x.device)
        f = s.encode(x)  # [b, s, d_sae]: one batch, the largest tensor held
        lengths = torch.tensor(batch.lengths, device=f.device)
        valid = torch.arange(f.shape[1], device=f.device)[None] < lengths[:, None]  # [b, s]
        f = f * valid[..., None]
        active += (f > 0).sum((0, 1)).cpu()
        total += f.sum((0, 1)).double().cpu()
        tokens += int(lengths.sum())
        doc_max = f.amax(1).cpu()  # [b, d_sae]
        docs = torch.arange(batch.start, batch.start + len(batch.texts))  # texts of this batch (none empty)
        merged_v = torch.cat([top_v, doc_max.T], 1)
        merged_d = torch.cat([top_d, docs[None].expand(n, -1)], 1)
        top_v, order = merged_v.topk(k, dim=1)
        top_d = merged_d.gather(1, order)
        texts.update(zip(docs.tolist(), batch.texts))
        kept = set(top_d.flatten().tolist())
        texts = {d: t for d, t in texts.items() if d in kept}
    top_d[top_v <= 0] = -1
    return FeatureStats(active, tokens, total, top_v.clamp(min=0), top_d, texts)


def stats_table(stats: FeatureStats, sae: SAE, top: int, by: str, meta: dict) -> Table:
    """The ``top`` features by firing rate (``by`` "frequency") or by largest activation ("max"),
    with their mean activation when active and their top document's text."""
    rate = stats.active.double() / max(stats.tokens, 1)
    key = rate if by == "frequency" else stats.top_values[:, 0].double()
    order = [i for i in key.argsort(descending=True).tolist() if stats.active[i] > 0][:top]
    mean = stats.total / stats.active.clamp(min=1)
    dead = int((stats.active == 0).sum())
    columns = {"frequency": [float(rate[i]) for i in order],
               "max_act": [float(stats.top_values[i, 0]) for i in order],
               "mean_when_active": [float(mean[i]) for i in order],
               "top_docs": [",".join(str(d) for d in stats.top_docs[i].tolist() if d >= 0) for i in order],
               "top_text": [stats.texts.get(int(stats.top_docs[i, 0]), "") for i in order]}
    meta = {**meta, "sae": sae.describe(), "sae_path": sae.path, "hook": sae.hook_name, "tokens": stats.tokens,
            "dead_features": dead, "features": sae.d_sae, "by": by}
    return Table("sae-corpus", [f"F{i}" for i in order], columns, meta)
