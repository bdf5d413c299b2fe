"""The edge graph of a model (seed-papers.md §6) and operations on edge sets.

Writers: ``input`` (token + position embeddings), every head ``L{l}H{h}`` (its output
``z_h W_O[h]``), every MLP ``L{l}MLP``, and for Mamba every layer ``L{l}`` (its out_proj output).
Readers: every head's query, key and value inputs (``L{l}H{h}.q/.k/.v``; key/value heads under
GQA), every MLP's input, every Mamba layer's input, and ``logits`` (the final residual stream).
Because the residual stream is a sum, the part of a reader's input that comes from writer u is
exactly u's output, so an edge can be patched alone (``analyses.edge_patching``). Output biases
are constant and belong to no edge.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable
from dataclasses import dataclass

import torch
from torch import Tensor

from analyses.errors import BadInput
from analyses.labels import head_label, mlp_label
from analyses.models.base import HookedModel
from analyses.results import Table


@dataclass(frozen=True)
class Writer:
    label: str
    layer: int  # -1 for the input
    kind: str  # input | head | mlp | mamba
    index: int = 0  # head index


@dataclass(frozen=True)
class Reader:
    label: str
    layer: int  # n_layers for logits
    hook: str  # the hook point holding this reader's input
    head: int | None = None  # head slice of a split q/k/v input
    reads_same_layer_heads: bool = False  # an MLP after its layer's attention (sequential residual)


class EdgeGraph:
    """Writers, readers and the edges between them for one model."""

    def __init__(self, model: HookedModel) -> None:
        s = model.shape
        self.model = model
        self.n_layers = s.n_layers
        self.writers: list[Writer] = [Writer("input", -1, "input")]
        self.readers: list[Reader] = []
        for layer in range(s.n_layers):
            if s.family == "mamba":
                self.writers.append(Writer(f"L{layer}", layer, "mamba"))
                self.readers.append(Reader(f"L{layer}", layer, f"blocks.{layer}.hook_layer_in"))
                continue
            self.writers += [Writer(head_label(layer, h), layer, "head", h) for h in range(s.n_heads)]
            self.writers.append(Writer(mlp_label(layer), layer, "mlp"))
            for x, count in (("q", s.n_heads), ("k", s.n_kv_heads), ("v", s.n_kv_heads)):
                self.readers += [Reader(f"L{layer}H{h}.{x}", layer, f"blocks.{layer}.hook_{x}_input", h) for h in range(count)]
            self.readers.append(Reader(f"L{layer}MLP", layer, f"blocks.{layer}.hook_mlp_in", None, not s.parallel_attn_mlp))
        self.readers.append(Reader("logits", s.n_layers, f"blocks.{s.n_layers - 1}.hook_resid_post"))
        w_layer = torch.tensor([w.layer for w in self.writers])[:, None]
        r_layer = torch.tensor([r.layer for r in self.readers])[None, :]
        is_head = torch.tensor([w.kind == "head" for w in self.writers])[:, None]
        same = torch.tensor([r.reads_same_layer_heads for r in self.readers])[None, :]
        self.allowed = (w_layer < r_layer) | ((w_layer == r_layer) & is_head & same)
        self.writer_index = {w.label: i for i, w in enumerate(self.writers)}
        self.reader_index = {r.label: j for j, r in enumerate(self.readers)}

    def feeds(self) -> Tensor:
        """[readers, writers] bool: reader j is an input of writer node i (L1H2.q/.k/.v feed the
        head L1H2; under GQA a key/value head feeds every query head of its group). ``logits``
        feeds nothing: it is the sink."""
        out = torch.zeros(len(self.readers), len(self.writers), dtype=torch.bool)
        s = self.model.shape
        group = s.n_heads // s.n_kv_heads if s.n_kv_heads else 1
        for j, r in enumerate(self.readers):
            if r.label == "logits":
                continue
            node, _, part = r.label.partition(".")
            if part in ("k", "v"):
                targets = [f"L{r.layer}H{h}" for h in range(s.n_heads) if h // group == r.head]
            else:
                targets = [node]
            for t in targets:
                out[j, self.writer_index[t]] = True
        return out

    def edges(self) -> list[tuple[int, int]]:
        rows, cols = self.allowed.nonzero(as_tuple=True)  # two flat lists: far quicker than [[i, j], ...]
        return list(zip(rows.tolist(), cols.tolist()))

    def edge_label(self, i: int, j: int) -> str:
        return f"{self.writers[i].label}->{self.readers[j].label}"

    def writer_hooks(self) -> list[str]:
        names = ["hook_embed"] + (["hook_pos_embed"] if self.model.shape.has_pos_embed else [])
        for layer in range(self.n_layers):
            if self.model.shape.family == "mamba":
                names.append(f"blocks.{layer}.mixer.hook_out_proj")
            else:
                names += [f"blocks.{layer}.attn.hook_z", f"blocks.{layer}.hook_mlp_out"]
        return names

    def reader_hooks(self) -> list[str]:
        return list(dict.fromkeys(r.hook for r in self.readers))

    def writer_outputs(self, acts: dict[str, Tensor]) -> Tensor:
        """[writers, b, s, d]: each writer's output (biases excluded) from captured activations."""
        return torch.cat([self.hook_writer_outputs(name, acts) for name in self.writer_hooks()])

    def hook_writer_outputs(self, name: str, acts: dict[str, Tensor]) -> Tensor:
        """[k, b, s, d] (float): the outputs of the writers read at one writer hook: the embeddings
        (token plus position, both at ``hook_embed``), a layer's heads, its MLP or its mixer."""
        if name == "hook_pos_embed":
            return acts[name].new_zeros((0, *acts[name].shape)).float()  # folded into hook_embed
        if name == "hook_embed":
            return (acts[name] + acts.get("hook_pos_embed", 0)).float()[None]
        layer = int(name.split(".")[1])
        if self.model.shape.family == "mamba":
            return (acts[name] - _bias(self.model.writer_bias(layer))).float()[None]
        w_o, _, _, b_out = self.model.writer_weights(layer)
        if name.endswith("attn.hook_z"):
            z = acts[name]
            return torch.einsum("bshe,hed->hbsd", z, w_o.to(z.device, z.dtype)).float()
        return (acts[name] - _bias(b_out)).float()[None]


def _bias(b: Tensor | None) -> Tensor | float:
    return 0.0 if b is None else b


# ---- edge sets ------------------------------------------------------------------------------


def select_edges(
    table: Table, graph: EdgeGraph, top: int | None = None, threshold: float | None = None, prune: bool = False
) -> Tensor:
    """The kept edge set [writers, readers]: the ``top`` edges by |score|, or all with
    |score| >= ``threshold``; with ``prune``, only those on a kept path from input to logits."""
    order = table.top(len(table.labels))
    chosen = order[:top] if top is not None else [i for i in order if abs(table.values[i]) >= (threshold or 0.0)]
    keep = _edge_set(table, graph, chosen)
    return prune_edges(keep, graph) if prune else keep


def _edge_set(table: Table, graph: EdgeGraph, rows: Iterable[int]) -> Tensor:
    """[writers, readers] bool with the edges labelled in ``table``'s ``rows`` set."""
    keep = torch.zeros_like(graph.allowed)
    for idx in rows:
        w, _, r = table.labels[idx].partition("->")
        if w not in graph.writer_index or r not in graph.reader_index:
            raise BadInput(f"edge {table.labels[idx]!r} is not an edge of this model; was the table made on another?")
        keep[graph.writer_index[w], graph.reader_index[r]] = True
    return keep


def prune_edges(keep: Tensor, graph: EdgeGraph) -> Tensor:
    """The kept edges that lie on a path of kept edges from ``input`` to ``logits``.

    The others change nothing when kept: a writer reached by no kept path from the input sees
    only corrupted inputs, so its output is its corrupted one; a node with no kept path on to
    the logits is read by nobody. Pruning them shows how many edges a circuit really uses."""
    keep = keep & graph.allowed
    feeds = graph.feeds()  # [R, W]
    source = torch.zeros(len(graph.writers), dtype=torch.bool)
    source[graph.writer_index["input"]] = True
    sink = torch.zeros(len(graph.readers), dtype=torch.bool)
    sink[graph.reader_index["logits"]] = True
    reached = _fixpoint(source, lambda w: source | (feeds & (keep & w[:, None]).any(0)[:, None]).any(0))
    onward = _fixpoint(sink, lambda r: sink | (feeds & (keep & r[None, :]).any(1)[None, :]).any(1))
    return keep & reached[:, None] & onward[None, :]


def _fixpoint(start: Tensor, step: Callable[[Tensor], Tensor]) -> Tensor:
    """Apply a monotone ``step`` from ``start`` until nothing changes (a DAG: a few layers' worth)."""
    cur = start
    while True:
        nxt = step(cur)
        if torch.equal(nxt, cur):
            return cur
        cur = nxt
