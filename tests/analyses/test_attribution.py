"""Attribution patching and edge attribution: exact where the metric is linear, invariants of
edge patching, and agreement with exact edge patching on the trained toy."""

from __future__ import annotations

import pytest
import torch
from test_patching import _pair

from analyses.attribution import (
    EdgeGraph,
    attribution_patching,
    default_ks,
    edge_attribution,
    exact_edge_scores,
    faithfulness,
    faithfulness_curve,
    path_patching,
    prune_edges,
    select_edges,
)
from analyses.errors import BadInput
from analyses.patching import activation_patching
from sessions.loading import load


@pytest.fixture(scope="module")
def linear_lm(tmp_path_factory):
    """GPT-2 whose metric is linear in the last layer's head outputs and MLP output: MLPs zeroed,
    and LayerNorms whose huge epsilon makes their scale a constant (weights scaled up to keep
    activations of order one)."""
    from transformers import AutoModelForCausalLM

    from analyses.toys.checkpoints import build_checkpoint

    path = build_checkpoint(tmp_path_factory.mktemp("linear"), "gpt2", jitter=0.1, seed=3, layer_norm_epsilon=1e6)
    model = AutoModelForCausalLM.from_pretrained(path)
    with torch.no_grad():
        for block in model.transformer.h:
            for p in block.mlp.parameters():
                p.zero_()
        for norm in [model.transformer.ln_f] + [n for b in model.transformer.h for n in (b.ln_1, b.ln_2)]:
            norm.weight.mul_(1000.0)
    model.save_pretrained(path)
    return load(str(path), device="cpu")


def test_attribution_patching_is_exact_where_the_metric_is_linear(linear_lm):
    args = _pair(linear_lm)
    last = linear_lm.hooked.shape.n_layers - 1
    head, mlp = attribution_patching(linear_lm.hooked, *args, ["head_out", "mlp_out"])
    exact = activation_patching(linear_lm.hooked, *args, "head_out")
    got, want = torch.tensor(head.values[last]), torch.tensor(exact.values[last])
    assert (want - exact.meta["corrupt"]).abs().max() > 1e-3  # the cells do move the metric
    assert torch.allclose(got, want, atol=1e-4 * max(1.0, float(want.abs().max())))
    assert head.axes == exact.axes and mlp.axes == ["layer", "pos"]


def test_eap_is_exact_on_edges_into_a_linear_metric(linear_lm):
    args = _pair(linear_lm)
    eap = dict(zip(*(lambda t: (t.labels, t.values))(edge_attribution(linear_lm.hooked, *args))))
    exact = dict(zip(*(lambda t: (t.labels, t.values))(exact_edge_scores(linear_lm.hooked, *args))))
    last = linear_lm.hooked.shape.n_layers - 1
    for h in range(4):
        label = f"L{last}H{h}->logits"
        assert eap[label] == pytest.approx(exact[label], rel=1e-3, abs=1e-5)


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama-gqa", "mamba"])
def test_edge_patching_invariants(name, loaded):
    lm = loaded(name)
    args = _pair(lm)
    graph = EdgeGraph(lm.hooked)
    full = faithfulness(lm.hooked, *args, graph.allowed.clone())
    assert full["faithfulness"] == pytest.approx(1.0, abs=1e-5) and full["circuit"] == pytest.approx(full["clean"], abs=1e-4)
    empty = faithfulness(lm.hooked, *args, torch.zeros_like(graph.allowed))
    assert empty["circuit"] == pytest.approx(empty["corrupt"], abs=1e-4)
    writers = [w.label for w in graph.writers]
    readers = [r.label for r in graph.readers]
    everything = path_patching(lm.hooked, *args, writers, readers)
    assert everything["patched"] == pytest.approx(everything["clean"], abs=1e-4)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_eap_shapes_positional_and_ig(name, loaded):
    lm = loaded(name)
    args = _pair(lm)
    graph = EdgeGraph(lm.hooked)
    eap = edge_attribution(lm.hooked, *args)
    assert len(eap.labels) == int(graph.allowed.sum()) and eap.meta["method"] == "EAP"
    pos = edge_attribution(lm.hooked, *args, positional=True)
    per_pos = torch.tensor([pos.columns[c] for c in list(pos.columns)[1:]])  # [pos, edges]
    assert torch.allclose(per_pos.sum(0), torch.tensor(eap.values), atol=1e-5)
    ig = edge_attribution(lm.hooked, *args, ig_steps=3)
    assert ig.meta["method"] == "EAP-IG (3 steps)" and len(ig.values) == len(eap.values)
    if name == "llama-gqa":  # key/value readers are the key/value heads
        assert "L1H1.k" in graph.reader_index and "L1H2.k" not in graph.reader_index


def test_eap_ig_tracks_exact_edge_patching_on_the_trained_ioi_toy(tmp_path):
    from analyses.tasks import ioi
    from analyses.tasks.pair_files import write_pairs
    from analyses.inputs import pairs_input

    lm = load("toy:ioi", device="cpu")
    pairs = [p for p in ioi.pairs(200, seed=5) if p.clean.startswith("When")][:16]
    path = tmp_path / "pairs.jsonl"
    write_pairs(path, pairs)
    args = (lm.hooked, *pairs_input(lm, pairs=str(path)).args)
    ig = edge_attribution(*args, ig_steps=20)
    exact = exact_edge_scores(*args)
    rank = lambda v: torch.tensor(v).argsort().argsort().float()  # noqa: E731
    rho = float(torch.corrcoef(torch.stack([rank(ig.values), rank(exact.values)]))[0, 1])
    assert rho > 0.8, rho
    graph = EdgeGraph(lm.hooked)
    assert faithfulness(*args, select_edges(ig, graph, top=len(ig.labels)))["faithfulness"] == pytest.approx(1.0)


def test_bad_edge_requests(loaded):
    lm = loaded("gpt2")
    args = _pair(lm)
    with pytest.raises(BadInput, match="unknown node"):
        path_patching(lm.hooked, *args, ["L9H9"], ["logits"])
    with pytest.raises(BadInput, match="differ in token length"):
        edge_attribution(lm.hooked, args[0], args[1][:, 1:], args[2], args[3])


def test_eap_ig_reports_progress_and_stops_when_asked(loaded):
    from analyses.errors import Cancelled

    lm = loaded("gpt2")
    seen = []
    edge_attribution(lm.hooked, *_pair(lm), ig_steps=3, progress=lambda d, t: seen.append((d, t)))
    assert seen == [(1, 3), (2, 3), (3, 3)]
    with pytest.raises(Cancelled):
        edge_attribution(lm.hooked, *_pair(lm), ig_steps=3, should_stop=lambda: len(seen) > 3,
                         progress=lambda d, t: seen.append((d, t)))
    assert len(seen) == 4  # one step ran, then it stopped


def test_path_patching_with_no_allowed_edge_is_refused(loaded):
    lm = loaded("gpt2")
    args = _pair(lm)
    with pytest.raises(BadInput, match="no edge from L1H0 reaches L0H1.q"):
        path_patching(lm.hooked, *args, ["L1H0"], ["L0H1.q"])
    for senders, receivers in (([], ["logits"]), (["L0H1"], [])):
        with pytest.raises(BadInput, match="at least one sender and one receiver"):
            path_patching(lm.hooked, *args, senders, receivers)
    assert path_patching(lm.hooked, *args, ["L0H1", "L1H0"], ["L0H1.q", "L1H0.q"])["edges"] == 1  # some allowed


def test_negative_ig_steps_are_refused_and_zero_is_plain_eap(loaded):
    lm = loaded("gpt2")
    with pytest.raises(BadInput, match="--ig must be a positive number"):
        edge_attribution(lm.hooked, *_pair(lm), ig_steps=-1)
    assert edge_attribution(lm.hooked, *_pair(lm), ig_steps=0).meta["method"] == "EAP"


def _keep(graph, *edges):
    keep = torch.zeros_like(graph.allowed)
    for label in edges:
        w, r = label.split("->")
        keep[graph.writer_index[w], graph.reader_index[r]] = True
    return keep


def test_prune_drops_dangling_edges_and_keeps_connected_ones(loaded):
    graph = EdgeGraph(loaded("gpt2").hooked)
    path = ["input->L0H1.k", "L0H1->L1H0.v", "L1H0->logits", "input->L1MLP", "L1MLP->logits"]
    connected = _keep(graph, *path)
    assert torch.equal(prune_edges(connected, graph), connected)
    dangling = [
        "input->L0H2.q",  # L0H2 has no kept edge onward
        "L0H3->L1H1.q", "L1H1->logits",  # L0H3 is reached by no kept edge from the input
        "input->L1H2.k", "L1H2->L1MLP",  # L1H2 -> L1MLP only leads on through L1MLP: connected
    ]
    pruned = prune_edges(_keep(graph, *path, *dangling), graph)
    assert torch.equal(pruned, _keep(graph, *path, "input->L1H2.k", "L1H2->L1MLP"))
    assert not prune_edges(_keep(graph, "input->L0H2.q", "L0H3->logits"), graph).any()


def test_prune_follows_gqa_key_value_heads(loaded):
    graph = EdgeGraph(loaded("llama-gqa").hooked)  # 4 query heads, 2 key/value heads
    keep = _keep(graph, "input->L0H1.k", "L0H3->logits")  # kv head 1 feeds query heads 2 and 3
    assert torch.equal(prune_edges(keep, graph), keep)
    assert not prune_edges(_keep(graph, "input->L0H0.k", "L0H3->logits"), graph).any()


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_pruning_never_adds_edges_nor_changes_faithfulness(name, loaded):
    lm = loaded(name)
    args = _pair(lm)
    graph = EdgeGraph(lm.hooked)
    eap = edge_attribution(lm.hooked, *args)
    for k in (3, 15, 60):
        keep = select_edges(eap, graph, top=k)
        pruned = select_edges(eap, graph, top=k, prune=True)
        assert not (pruned & ~keep).any() and torch.equal(prune_edges(pruned, graph), pruned)
        a, b = faithfulness(lm.hooked, *args, keep), faithfulness(lm.hooked, *args, pruned)
        assert a["circuit"] == pytest.approx(b["circuit"], abs=1e-4)


def test_default_ks_start_small_and_end_at_every_edge():
    assert default_ks(1) == [1]
    assert default_ks(10) == [1, 2, 5, 10]
    assert default_ks(37) == [1, 2, 5, 10, 20, 37]
    assert default_ks(500) == [1, 2, 5, 10, 20, 50, 100, 200, 500]
    assert default_ks(0) == []


def test_faithfulness_curve_runs_from_nothing_to_the_whole_graph(loaded):
    lm = loaded("gpt2")
    args = _pair(lm)
    graph = EdgeGraph(lm.hooked)
    eap = edge_attribution(lm.hooked, *args)
    n = len(eap.labels)
    seen = []
    curve = faithfulness_curve(lm.hooked, *args, eap, [0, *default_ks(n)], progress=lambda d, t: seen.append(d))
    assert [c["k"] for c in curve] == [0, *default_ks(n)] and seen == list(range(1, len(curve) + 1))
    assert curve[0]["faithfulness"] == pytest.approx(0.0, abs=1e-4) and curve[0]["edges_kept"] == 0
    assert curve[-1]["faithfulness"] == pytest.approx(1.0, abs=1e-4) and curve[-1]["edges_kept"] == n
    mid = faithfulness(lm.hooked, *args, select_edges(eap, graph, top=10))
    assert next(c for c in curve if c["k"] == 10)["faithfulness"] == pytest.approx(mid["faithfulness"], abs=1e-5)
    pruned = faithfulness_curve(lm.hooked, *args, eap, [10, n], prune=True)
    assert pruned[0]["edges_kept"] == int(select_edges(eap, graph, top=10, prune=True).sum()) <= 10
    assert pruned[1]["edges_kept"] == n and pruned[1]["faithfulness"] == pytest.approx(1.0, abs=1e-4)
    with pytest.raises(BadInput, match="0 or more"):
        faithfulness_curve(lm.hooked, *args, eap, [-1])
