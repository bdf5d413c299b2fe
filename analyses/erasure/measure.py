"""What every erasure analysis needs of a model: the hook names, the writers' weights, and a
forward pass over a batch with its points (each (text, position) with a true next token) and
the DLA readout toward that token (conventions: ``analyses.erasure``)."""

from __future__ import annotations

from collections.abc import Iterable, Iterator
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.corpus import CorpusBatch
from analyses.dla import readout
from analyses.errors import BadInput, Cancelled
from analyses.labels import Node, match_node
from analyses.models.base import HookedModel


FOLDS = ("raw", "tl")


def check_fold(fold: str) -> None:
    if fold not in FOLDS:
        raise BadInput(f"--fold must be one of {', '.join(FOLDS)} (got {fold!r})")



def check_resampled(points: int, partial: bool, analysis: str, start: int) -> None:
    """After a resampling loop: a stop before any batch finished, or no position to measure, is
    an error (the donor of a text's output is another text of its batch)."""
    if points == 0 and partial:
        raise Cancelled(f"{analysis} stopped before its first batch ended")
    if points == 0:
        raise BadInput("no position to measure: resampling needs batches of two or more texts with a next token "
                       f"after --start {start}")


class Weights:
    """Each layer's W_O [heads, d_head, d_model], MLP output bias and value bias, fp32 on one device.

    ``fold="raw"``: W_O as stored; an MLP's output bias is taken out of its output; no value bias.
    ``fold="tl"`` (TransformerLens's from_pretrained processing, as the paper's code had it): W_O
    centred over d_model on LayerNorm models (center_writing_weights); the value bias, with the
    norm's bias folded into it (b_ln W_V + b_V, fold_ln), is taken out of every head's z
    (fold_value_biases moves it into b_O, which no head's output holds); an MLP's output keeps its
    bias, centred with the rest (TL's hook_mlp_out)."""

    def __init__(self, model: HookedModel, device: torch.device, fold: str = "raw"):
        check_fold(fold)
        self.w_o, self.b_out, self.b_v = [], [], []
        shape = model.shape
        for layer in range(shape.n_layers):
            w_o, _, _, b_out = model.writer_weights(layer)
            w_o = w_o.float().to(device)
            if fold == "raw":
                self.w_o.append(w_o)
                self.b_out.append(None if b_out is None else b_out.float().to(device))
                self.b_v.append(None)
                continue
            self.w_o.append(center(model, w_o))
            self.b_out.append(None)
            w_v, b_v = model.value_weights(layer)  # [d, kv, dh], [kv, dh]
            beta = model.attn_norm_params(layer)[1]
            total = torch.zeros(w_v.shape[1:], device=device)
            if b_v is not None:
                total += b_v.float().to(device)
            if beta is not None:
                total += torch.einsum("d,dke->ke", beta.float().to(device), w_v.float().to(device))
            self.b_v.append(total.repeat_interleave(shape.n_heads // w_v.shape[1], dim=0))  # [heads, dh]


def _vocab_mean_readout(model: HookedModel, device: torch.device, chunk: int = 8192) -> Tensor:
    """The DLA readout of the mean unembedding column: subtracted from every token's readout, it
    gives the readout of W_U centred over the vocabulary (TL's center_unembed)."""
    v, total = model.shape.d_vocab, None
    for lo in range(0, v, chunk):
        part = model.unembed_columns(range(lo, min(v, lo + chunk)))[0].float().to(device).sum(1)
        total = part if total is None else total + part
    return readout(model, (total / v)[:, None])[:, 0]


def center(model: HookedModel, x: Tensor) -> Tensor:
    return x - x.mean(-1, keepdim=True) if model.shape.norm == "layernorm" else x


@dataclass
class Run:
    """One forward over a batch and the points measured on it: (row, position) pairs that have a
    true next token, that token's DLA readout ``u`` [N, d] and the final-norm scale ``s_f`` [N]."""

    cache: dict[str, Tensor]
    logits: Tensor
    rows: Tensor
    cols: Tensor
    tokens: Tensor
    u: Tensor
    s_f: Tensor
    centred: bool = False  # logits centred over the vocabulary (fold "tl": W_U and b_U centred)

    def at(self, name: str) -> Tensor:
        """The captured activation at the points, fp32: [N, ...]."""
        x = self.cache[name]
        return x[self.rows.to(x.device), self.cols.to(x.device)].float()

    def next_logits(self, logits: Tensor | None = None) -> Tensor:
        """The true next token's logit at each point [N]."""
        x = self.logits if logits is None else logits
        dev = x.device
        picked = x[self.rows.to(dev), self.cols.to(dev), self.tokens.to(dev)].float()
        if self.centred:
            picked = picked - x[self.rows.to(dev), self.cols.to(dev)].float().mean(-1)
        return picked


class Measure:
    """What every erasure analysis needs of a model: the hook names, the weights, and the forward
    pass with its points."""

    def __init__(self, model: HookedModel, start: int = 0, last: bool = False, fold: str = "raw"):
        if model.shape.family == "mamba":
            raise BadInput("Mamba has no attention heads or MLPs to measure erasure on")
        if start < 0:
            raise BadInput("--start must be 0 or more")
        self.model, self.start, self.last, self.fold = model, start, last, fold
        self.skipped_texts = 0
        self.device = model.input_device()
        self.W = Weights(model, self.device, fold)
        self.u_mean = _vocab_mean_readout(model, self.device) if fold == "tl" else None
        shape = model.shape
        self.n, self.heads = shape.n_layers, shape.n_heads
        self.resid_names, self.resid_labels = [], []
        for layer in range(self.n):
            subs = ("pre", "post") if shape.parallel_attn_mlp else ("pre", "mid", "post")
            for sub in subs:
                self.resid_names.append(f"blocks.{layer}.hook_resid_{sub}")
                self.resid_labels.append(f"resid_{sub}{layer}")
        self.comp_labels = [Node(layer, h).label for layer in range(self.n) for h in [*range(self.heads), None]]
        self.comp_nodes = [match_node(label) for label in self.comp_labels]

    def capture(self, resid: bool = True) -> list[str]:
        names = ["ln_final.hook_scale"]
        for layer in range(self.n):
            names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
        return names + (self.resid_names if resid else [])

    def donor_runs(self, batches: Iterable[CorpusBatch], capture: list[str]) -> Iterator[tuple[CorpusBatch, Run]]:
        """Each batch run clean with its points (``run(donors=True)``), for a resampling that takes
        each text's donor from the next text of its batch; a batch with one text or no point is
        passed over (its texts counted in ``skipped_texts`` when it has one text)."""
        for batch in batches:
            if len(batch.texts) < 2:
                self.skipped_texts += len(batch.texts)
                continue
            clean = self.run(batch, capture, donors=True)
            if clean is not None:
                yield batch, clean

    def run(self, batch: CorpusBatch, capture: list[str], interventions=(), donors: bool = False,
            clean: Run | None = None) -> Run | None:
        """Run the batch; points are positions >= start with a next token (and, with ``donors``,
        a position the next row also has). ``clean`` reuses a clean run's points, readout and
        scale (the frozen final-norm scale of a patched run). None when no point is left."""
        model = self.model
        res = model.run(batch.ids, capture=capture, interventions=interventions)
        if clean is not None:
            return Run(res.cache, res.logits, clean.rows, clean.cols, clean.tokens, clean.u, clean.s_f, clean.centred)
        ids = batch.ids
        lengths = torch.tensor(batch.lengths)
        pos = torch.arange(ids.shape[1])
        valid = (pos[None] >= self.start) & (pos[None] < lengths[:, None] - 1)
        if self.last:  # only the position that predicts each text's last token (a task's answer)
            valid &= pos[None] == lengths[:, None] - 2
        if donors:
            valid &= pos[None] < lengths.roll(-1)[:, None]
        rows, cols = valid.nonzero(as_tuple=True)
        if len(rows) == 0:
            return None
        tokens = ids[rows, cols + 1]
        uniq, inverse = tokens.unique(return_inverse=True)
        cols_u = model.unembed_columns(uniq.tolist())[0].to(self.device)
        u_tokens = readout(model, cols_u).T
        if self.u_mean is not None:
            u_tokens = u_tokens - self.u_mean
        u = u_tokens[inverse.to(self.device)]  # [N, d]
        s_f = res.cache["ln_final.hook_scale"][rows, cols, 0].float().to(self.device)
        return Run(res.cache, res.logits, rows, cols, tokens, u, s_f, self.u_mean is not None)

    def output(self, run: Run, node: Node) -> Tensor:
        """A component's output at the points [N, d] (no b_O / MLP output bias)."""
        full = self.full_output(run.cache, node)
        return full[run.rows.to(full.device), run.cols.to(full.device)]

    def full_output(self, cache: dict[str, Tensor], node: Node) -> Tensor:
        """A component's output at every position [b, s, d]."""
        if node.head is None:
            out = cache[f"blocks.{node.layer}.hook_mlp_out"].float().to(self.device)
            if self.fold == "tl":
                return center(self.model, out)
            b = self.W.b_out[node.layer]
            return out if b is None else out - b
        z = self.z(cache[f"blocks.{node.layer}.attn.hook_z"], node.layer)[:, :, node.head]
        return z @ self.W.w_o[node.layer][node.head]

    def z(self, z: Tensor, layer: int) -> Tensor:
        """Heads' z [..., heads, d_head] in fp32 on the device, the value bias out under fold "tl"."""
        z = z.float().to(self.device)
        b_v = self.W.b_v[layer]
        return z if b_v is None else z - b_v

    def project(self, run: Run, vecs: Tensor, resid: bool = True) -> tuple[Tensor, Tensor | None]:
        """Every component's output (and every residual point) dotted with ``vecs`` [N, k, d]:
        ([N, C, k], [N, R, k]). Heads are projected through W_O first, never expanded."""
        parts = []
        for layer in range(self.n):
            z = self.z(run.at(f"blocks.{layer}.attn.hook_z"), layer)  # [N, H, dh]
            through = torch.einsum("hed,nkd->nhek", self.W.w_o[layer], vecs)
            parts.append((z[..., None] * through).sum(2))
            mlp = self.output(run, Node(layer))
            parts.append(torch.einsum("nd,nkd->nk", mlp, vecs)[:, None])
        comps = torch.cat(parts, 1)
        if not resid:
            return comps, None
        res = torch.stack([run.at(name).to(self.device) for name in self.resid_names], 1)  # [N, R, d]
        return comps, torch.einsum("nrd,nkd->nrk", res, vecs)

    def downstream(self, writer: Node, node: Node) -> bool:
        """Whether ``node`` reads the residual stream after ``writer`` wrote to it."""
        if node.layer > writer.layer:
            return True
        same_layer_mlp = node.layer == writer.layer and node.head is None and writer.head is not None
        return same_layer_mlp and not self.model.shape.parallel_attn_mlp
