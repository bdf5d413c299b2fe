"""Composition scores, SVD components, edits (Talking Heads): parity with TransformerLens (numbers
stored from a real TL run), against full D x D products, and edits' exactness and undo."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import torch

from analyses.talking_heads.composition import (
    component_scores,
    composition_scores,
    head_weights,
    ov_svd,
    qk_spectrum,
    random_baseline,
    receiver_factors,
)
from analyses.edit_spec import parse_edit
from analyses.edits import EditStack, edited, write_directions
from analyses.errors import BadInput

FIXTURE = Path(__file__).parent / "data" / "tl_composition.json"
ATTN = ["gpt2", "neox", "llama-gqa", "qwen2"]


def _full(w, mode):
    """L [L, H, D, D] and R [L, H, D, D] as full products (the reference: no factoring)."""
    ov = w.W_V @ w.W_O
    qk = w.W_Q @ w.W_K.transpose(-1, -2)
    return ov, {"Q": qk, "K": qk.transpose(-1, -2), "V": ov}[mode]


@pytest.mark.parametrize("name", ["gpt2", "neox", "llama-gqa"])
def test_scores_equal_transformer_lens(name, tmp_path):
    """TL's all_composition_scores (stored by bench/tl_composition.py from TransformerLens 4.3 on
    these exact checkpoints): with TL's processing (fold_ln, centred weights) and on raw weights."""
    from analyses.toys.checkpoints import build_checkpoint
    from sessions.loading import load

    entry = json.loads(FIXTURE.read_text())[name]
    lm = load(str(build_checkpoint(tmp_path / name, entry["family"], **entry["build"])), device="cpu")
    for processing, fold in (("compat", "tl"), ("raw", "raw")):
        w = head_weights(lm.hooked, fold)
        for mode in "QKV":
            tl = torch.tensor(entry[processing][mode])
            ours = composition_scores(w, mode)
            assert ours.shape == tl.shape
            assert (ours - tl).abs().max() < 2e-6, (processing, mode)
    if name == "neox":
        assert lm.hooked.shape.parallel_attn_mlp
    if name == "llama-gqa":
        assert lm.hooked.shape.n_kv_heads < lm.hooked.shape.n_heads


@pytest.mark.parametrize("name", ATTN)
@pytest.mark.parametrize("mode", list("QKV"))
def test_scores_equal_full_products(loaded, name, mode):
    w = head_weights(loaded(name).hooked, "ln")
    left, right = _full(w, mode)
    got = composition_scores(w, mode)
    n, h = w.n_layers, w.n_heads
    for l1 in range(n):
        for h1 in range(h):
            for l2 in range(n):
                for h2 in range(h):
                    a, b = left[l1, h1], right[l2, h2]
                    want = float((a @ b).norm() / a.norm() / b.norm()) if l1 < l2 else 0.0
                    assert got[l1, h1, l2, h2] == pytest.approx(want, abs=1e-5)


def test_folds_differ_and_gqa_shares_keys(loaded):
    lm = loaded("llama-gqa").hooked
    raw, ln = head_weights(lm, "raw"), head_weights(lm, "ln")
    group = lm.shape.n_heads // lm.shape.n_kv_heads
    assert group > 1 and torch.equal(raw.W_K[:, 0], raw.W_K[:, 1])  # query heads 0, 1 share a key head
    assert not torch.allclose(composition_scores(raw, "Q"), composition_scores(ln, "Q"))


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_component_score_closed_form_equals_rank_one_rebuild(loaded, name):
    """CS_i = ‖v_iᵀ R‖/‖R‖_F equals ‖C_i R‖/(‖C_i‖‖R‖) with C_i = s_i u_i v_iᵀ rebuilt from the
    full SVD of OV; and Σ s_i² CS_i² / Σ s_i² = CS²."""
    w = head_weights(loaded(name).hooked, "tl")
    s, vh = ov_svd(w)
    for mode in "QKV":
        left, right = _full(w, mode)
        cs = component_scores(vh, receiver_factors(w, mode))  # [L, H, k, L, H]
        full = composition_scores(w, mode)
        u_f, s_f, vh_f = torch.linalg.svd(left[0, 1].double())
        assert torch.allclose(s_f[: s.shape[-1]].float(), s[0, 1], rtol=1e-4, atol=1e-5)
        r = right[1, 2].double()
        for i in range(s.shape[-1]):
            c_i = s_f[i] * torch.outer(u_f[:, i], vh_f[i])
            want = (c_i @ r).norm() / c_i.norm() / r.norm()
            assert float(cs[0, 1, i, 1, 2]) == pytest.approx(float(want), rel=1e-3, abs=1e-6)
        total = ((s[0, 1] ** 2) * cs[0, 1, :, 1, 2] ** 2).sum() / (s[0, 1] ** 2).sum()
        assert float(total.sqrt()) == pytest.approx(float(full[0, 1, 1, 2]), rel=1e-4)


def test_spectra_and_random_baseline(loaded):
    w = head_weights(loaded("gpt2").hooked, "tl")
    qk = qk_spectrum(w)
    full = torch.linalg.svdvals(w.W_Q[1, 0] @ w.W_K[1, 0].T)
    assert torch.allclose(qk[1, 0], full[: qk.shape[-1]], rtol=1e-4, atol=1e-5)
    q = receiver_factors(w, "Q")
    mean, std = random_baseline(w.W_O.shape[-1], w.W_O.shape[-2], q, draws=50)
    d = w.W_O.shape[-1]
    # A random unit v has E‖vᵀR‖² = ‖R‖²/D, so the null sits just under 1/sqrt(D).
    assert 0.5 / d**0.5 < float(mean.mean()) < 1.05 / d**0.5
    assert float(std.mean()) > 0


# ---- edits -----------------------------------------------------------------------------------


def _fresh(checkpoints, name):
    from sessions.loading import load

    return load(str(checkpoints[name]), device="cpu")


def test_parse_edit():
    e = parse_edit("l1h2:OV:0=0")
    assert (e.layer, e.head, e.target, e.comps, e.op, e.value, e.pos) == (1, 2, "ov", (0,), "=", 0.0, None)
    assert parse_edit("L0H3:out:0,2+=2.5@-1").text == "L0H3:out:0,2+=2.5@-1"
    for bad in ["L1H2:ov:0+=1", "L1H2:ov:0=1@3", "L1H2:qk:0=0", "L1H2:out:0,0=1", "L1:ov:0=0", "L1H2:ov:0=nan"]:
        with pytest.raises(BadInput):
            parse_edit(bad)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox"])
@pytest.mark.parametrize("alpha", [0.0, 2.0])
def test_weight_edit_scales_one_singular_value_and_undo_is_exact(checkpoints, name, alpha):
    lm = _fresh(checkpoints, name)
    before = {k: v.clone() for k, v in lm.hooked.model.state_dict().items()}
    s0 = ov_svd(head_weights(lm.hooked, "tl"))[0]
    stack = EditStack(lm.hooked)
    stack.apply(f"L1H1:ov:0={alpha:g}")
    s1 = ov_svd(head_weights(lm.hooked, "tl"))[0]
    want = s0[1, 1].clone()
    want[0] *= alpha
    assert torch.allclose(s1[1, 1], want.sort(descending=True).values, rtol=1e-4, atol=1e-5)
    assert torch.allclose(s1[1, 0], s0[1, 0]) and torch.allclose(s1[0], s0[0])  # nothing else moved
    stack.apply("L0H2:ov:1,3=0.5")
    assert stack.texts() == [f"L1H1:ov:0={alpha:g}", "L0H2:ov:1,3=0.5"]
    stack.undo()
    stack.undo()
    assert stack.undo() is None
    after = lm.hooked.model.state_dict()
    assert all(torch.equal(before[k], after[k]) for k in before)


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_activation_scaling_equals_weight_edit(checkpoints, name):
    lm = _fresh(checkpoints, name)
    ids = torch.tensor([[2, 5, 9, 11, 7, 5, 9, 4]])
    plain = lm.hooked.run(ids).logits
    with edited(lm.hooked, ["L0H1:ov:0,1=0.3"]):
        by_weights = lm.hooked.run(ids).logits
    with edited(lm.hooked, ["L0H1:out:0,1=0.3"]):
        by_acts = lm.hooked.run(ids).logits
    assert not torch.allclose(plain, by_weights, atol=1e-4)
    assert torch.allclose(by_weights, by_acts, atol=1e-5)
    assert lm.hooked.standing == () and torch.equal(lm.hooked.run(ids).logits, plain)


def test_activation_edits_project_out_and_move_at_one_position(checkpoints):
    lm = _fresh(checkpoints, "gpt2")
    ids = torch.tensor([[2, 5, 9, 11, 7, 5]])
    names = ["blocks.0.attn.hook_z", "blocks.0.hook_attn_out"]
    clean = lm.hooked.run(ids, capture=names).cache
    v = write_directions(lm.hooked, 0, 2, [0])[0]
    w_o = lm.hooked.writer_weights(0)[0][2]
    head_out = clean[names[0]][0, :, 2] @ w_o  # [pos, D]
    with edited(lm.hooked, ["L0H2:out:0=0@-1"]):
        out = lm.hooked.run(ids, capture=names).cache[names[1]][0]
    delta = out - clean[names[1]][0]
    assert torch.allclose(delta[:-1], torch.zeros_like(delta[:-1]))
    assert torch.allclose(delta[-1], -(head_out[-1] @ v) * v, atol=1e-6)
    assert float((out[-1] - clean[names[1]][0, -1] + head_out[-1]) @ v) == pytest.approx(0.0, abs=1e-5)
    with edited(lm.hooked, ["L0H2:out:0+=3@1"]):
        out = lm.hooked.run(ids, capture=names).cache[names[1]][0]
    delta = out - clean[names[1]][0]
    assert torch.allclose(delta[1], 3 * v, atol=1e-6) and torch.allclose(delta[2:], torch.zeros_like(delta[2:]))


def test_write_directions_reuse_a_layers_svd_across_edits(checkpoints, monkeypatch):
    """An edit search applies and undoes thousands of edits on a few layers: one SVD per layer
    and weight state, recomputed when a weight edit stands (it ran one per edit before)."""
    import analyses.edits as E
    from analyses.talking_heads.composition import head_weights, ov_svd

    lm = _fresh(checkpoints, "gpt2")
    calls = []
    monkeypatch.setattr(E, "ov_svd", lambda w: calls.append(1) or ov_svd(w))
    first = write_directions(lm.hooked, 0, 2, [0, 1])
    for edit in ["L0H2:ov:0=0", "L0H1:ov:1=2", "L0H2:out:0=0"]:
        with edited(lm.hooked, [edit]):
            pass
    assert torch.equal(write_directions(lm.hooked, 0, 2, [0, 1]), first) and len(calls) == 1
    with edited(lm.hooked, ["L0H2:ov:0=3"]):
        now = write_directions(lm.hooked, 0, 1, [0])
        assert torch.equal(now, ov_svd(head_weights(lm.hooked, "tl", layers=[0]))[1][0, 1, [0]])
    assert len(calls) == 2 and torch.equal(write_directions(lm.hooked, 0, 2, [0, 1]), first) and len(calls) == 2


def test_bad_edits_are_refused(checkpoints):
    lm = _fresh(checkpoints, "gpt2")
    for bad in ["L9H0:ov:0=0", "L0H9:ov:0=0", "L0H0:ov:99=0"]:
        with pytest.raises(BadInput):
            EditStack(lm.hooked).apply(bad)
    with pytest.raises(BadInput), edited(lm.hooked, ["L0H0:out:0=0@40"]):
        lm.hooked.run(torch.tensor([[2, 5, 9]]))
    assert lm.hooked.standing == ()


# ---- the declarations: CLI, any analysis with edits, the session record ------------------------


def test_cli_composition_grid_and_channels(capsys, checkpoints):
    from workbench.cli import main

    assert main(["run", "composition", "--model", str(checkpoints["llama-gqa"]), "--mode", "K", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["axes"] == ["sender", "receiver"] and out["mode"] == "K" and out["fold"] == "tl"
    n = len(out["axis_labels"]["sender"])
    assert n == 8 and out["grid"][0][0] == 0.0 and out["grid"][0][n - 1] > 0  # L0 -> L1 only
    assert main(["run", "channels", "--model", str(checkpoints["gpt2"]), "--receiver", "L1H2", "--top", "0",
                 "--json"]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert len(rows) == 4 * 8 and all(r["label"].endswith("-> L1H2") for r in rows)  # 4 senders x d_head 8
    assert rows == sorted(rows, key=lambda r: -r["cs"])
    assert main(["run", "head-spectra", "--model", str(checkpoints["neox"]), "--circuit", "qk", "--show", "L1H0",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert list(out["lines"]) == ["L1H0"] and out["lines"]["L1H0"] == sorted(out["lines"]["L1H0"], reverse=True)


@pytest.mark.parametrize("argv", [
    ["channels", "--sender", "head1"],
    ["head-spectra", "--show", "L0X"],
    ["eval", "--task", "recall", "--edit", "L0H0:ov:0+=1"],
    ["dla", "--prompt", "a", "--answer", "b", "--edit", "nonsense"],
    ["inhibition", "--prompt", "a", "--sender", "L0H0", "--receiver", "L1H0", "--positions", "1,x"],
])
def test_cli_refuses_bad_input_before_loading(capsys, argv):
    from workbench.cli import main

    assert main(["run", argv[0], "--model", "toy:nope", *argv[1:]]) == 2
    assert "toy:nope" not in capsys.readouterr().err


def test_any_analysis_runs_with_edits_and_records_them(capsys, checkpoints, tmp_path):
    from conftest import PROMPT

    from sessions.store import Session
    from workbench.cli import main

    model = str(checkpoints["gpt2"])
    base = ["run", "dla", "--model", model, "--prompt", PROMPT, "--answer", " Mary", "--json"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)
    session = tmp_path / "s.wbs"
    assert main([*base, "--edit", "L1H0:ov:0=0", "--edit", "l0h1:out:1+=2@-1", "--session", str(session)]) == 0
    edited_out = json.loads(capsys.readouterr().out)
    assert edited_out["edits"] == ["L1H0:ov:0=0", "L0H1:out:1+=2@-1"] and "edits" not in plain
    assert edited_out["logit"] != pytest.approx(plain["logit"])
    assert edited_out["sum"] == pytest.approx(edited_out["logit"], abs=1e-4)  # DLA still adds up under edits
    run = Session.open(str(session)).runs()[0]
    assert run.result.meta["edits"] == ["L1H0:ov:0=0", "L0H1:out:1+=2@-1"]


def test_inhibition_on_a_prompt(loaded):
    from conftest import PROMPT

    from analyses.registry import run_analysis

    lm = loaded("gpt2")
    t = run_analysis(lm, "inhibition", prompt=PROMPT, sender="L0H1", receiver="L1H2", positions="1", vs="3")
    name = "blocks.1.attn.hook_pattern"
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    row = lm.hooked.run(ids, capture=[name]).cache[name][0, 2, -1]
    assert t.meta["clean"] == pytest.approx(float(row[1] - row[3]), abs=1e-6)
    assert len(t.labels) == lm.hooked.shape.d_head
    for i in (0, 3):  # each row is a run with that component projected out at the query position only
        with edited(lm.hooked, [f"L0H1:out:{i}=0@-1"]):
            row = lm.hooked.run(ids, capture=[name]).cache[name][0, 2, -1]
        assert t.columns["ablated"][i] == pytest.approx(float(row[1] - row[3]), abs=1e-6)
        assert t.columns["change"][i] == pytest.approx(t.meta["clean"] - t.columns["ablated"][i], abs=1e-9)
    assert lm.hooked.standing == ()
    with pytest.raises(BadInput, match="later layer"):
        run_analysis(lm, "inhibition", prompt=PROMPT, sender="L1H1", receiver="L1H2", positions="1")


def test_recall_edit_search_reports_its_best_edit(checkpoints):
    """On toy:recall: the reported edit is the top of the search, and before/after per variant
    are eval's numbers without and with that edit on the held-out sample."""
    from analyses.evaluate import evaluate
    from analyses.tasks import task_examples
    from analyses.talking_heads.inhibition import recall_edit_search
    from sessions.loading import load

    lm = load("toy:recall", device="cpu")
    t = recall_edit_search(lm.hooked, lm.tokenizer, n=30, seed=1, scales=(0.0, 3.0), comps=1)
    assert t.meta["edits_tried"] == 2 * 4 * 1 * 2
    assert t.meta["edit"] == t.meta["top_edits"][0]["edit"]
    assert t.meta["search_accuracy_after"] >= max(e["search_accuracy"] for e in t.meta["top_edits"])
    assert t.labels[0] == "len2" and t.labels[-1] == "all"
    held = task_examples("recall", 30, 1, "test")
    before = evaluate(lm.hooked, lm.tokenizer, "recall", held)
    with edited(lm.hooked, [t.meta["edit"]]):
        after = evaluate(lm.hooked, lm.tokenizer, "recall", held)
    assert t.columns["before"] == before.columns["accuracy"] and t.columns["after"] == after.columns["accuracy"]
    assert t.columns["gain"][-1] == pytest.approx(after.meta["accuracy"] - before.meta["accuracy"])


def test_models_without_heads_refuse_composition_and_edits(loaded):
    from analyses.talking_heads.composition import head_weights as hw

    lm = loaded("mamba")
    with pytest.raises(BadInput, match="attention heads"):
        hw(lm.hooked)
    with pytest.raises(BadInput, match="attention heads"), edited(lm.hooked, ["L0H0:ov:0=0"]):
        pass


def test_inhibition_over_a_task_matches_runs_by_hand():
    """On toy:ioi: D is the mean of α(END→IO) − α(END→S1) over the prompts; D_i the same with
    component i projected out of the sender's output at END; score = (D − D_i)/D."""
    from analyses.registry import run_analysis
    from analyses.tasks import task_examples
    from analyses.tokens import encode_prompt, resolve_token
    from sessions.loading import load

    lm = load("toy:ioi", device="cpu")
    t = run_analysis(lm, "inhibition-task", task="ioi", n=6, seed=2, sender="L0H1", receiver="L1H2")
    name = "blocks.1.attn.hook_pattern"

    def d_mean() -> float:
        ds = []
        for e in task_examples("ioi", 6, 2, "test"):
            ids = encode_prompt(lm.tokenizer, e.prompt)
            row = lm.hooked.run(torch.tensor([ids]), capture=[name]).cache[name][0, 2, -1]
            a, d = resolve_token(lm.tokenizer, e.answer), resolve_token(lm.tokenizer, e.distractor)
            ds.append(float(row[ids.index(a)] - row[ids.index(d)]))
        return sum(ds) / len(ds)

    clean = d_mean()
    assert t.meta["n"] == 6 and t.meta["clean"] == pytest.approx(clean, abs=1e-6)
    with edited(lm.hooked, ["L0H1:out:6=0@-1"]):
        ablated = d_mean()
    assert t.columns["ablated"][6] == pytest.approx(ablated, abs=1e-6)
    assert t.columns["score"][6] == pytest.approx((clean - ablated) / clean, rel=1e-4)
    assert t.columns["cs_q"] == pytest.approx(run_analysis(lm, "inhibition", prompt="Mary gave", sender="L0H1",
                                                            receiver="L1H2", positions="0").columns["cs_q"])
