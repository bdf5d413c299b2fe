"""Generation with the key/value (Mamba: state) cache equals re-running the whole sequence at every
step, with the standing interventions in force, on every family; and HF's own greedy generate."""

from __future__ import annotations

import pytest
import torch
from conftest import VARIANTS, encode

from analyses.edits import edited
from analyses.errors import BadInput, Cancelled
from analyses.generate import Sampling, continuation
from analyses.steering import Steer

ALL = list(VARIANTS)


def _interventions(lm):
    """A steering vector from position 3 on, and (attention models) an activation edit at the
    prompt's last position: the positions must land alike in cached and uncached runs."""
    d = lm.hooked.shape.d_model
    steer = Steer(torch.linspace(-1, 1, d), "blocks.1.hook_resid_pre", 2.0, start=3)
    return [steer] + (["L0H1:out:0=0@-1", "L1H0:out:0+=3"] if lm.hooked.shape.n_heads else [])


@pytest.mark.parametrize("name", ALL)
def test_cached_generation_under_interventions_equals_step_by_step_runs(name, loaded):
    lm = loaded(name)
    ids = encode(lm)[0].tolist()
    with edited(lm.hooked, _interventions(lm)):
        cached = continuation(lm.hooked, ids, 8)
        uncached = continuation(lm.hooked, ids, 8, use_cache=False)
    plain = continuation(lm.hooked, ids, 8)
    assert cached.ids == uncached.ids
    assert max(abs(a - b) for a, b in zip(cached.probs, uncached.probs)) < 1e-5
    assert cached.probs != plain.probs  # the interventions acted


def test_a_weight_edit_acts_on_generation_and_is_undone(loaded):
    lm = loaded("gpt2")
    ids = encode(lm)[0].tolist()
    before = continuation(lm.hooked, ids, 6)
    with edited(lm.hooked, ["L1H0:ov:0,1,2=0"]):
        cached, uncached = continuation(lm.hooked, ids, 6), continuation(lm.hooked, ids, 6, use_cache=False)
    assert cached.ids == uncached.ids and cached.probs != before.probs
    assert continuation(lm.hooked, ids, 6).probs == before.probs


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "mamba"])
def test_greedy_generation_is_hf_generate(name, loaded, hf_model):
    lm = loaded(name)
    ids = encode(lm)
    hf = hf_model(name)
    with torch.no_grad():
        ref = hf.generate(ids, max_new_tokens=8, do_sample=False, eos_token_id=None, pad_token_id=0)
    ours = continuation(lm.hooked, ids[0].tolist(), 8)
    assert ours.ids == ref[0, ids.shape[1]:].tolist()


def test_sampling_follows_its_seed_and_top_k_one_is_greedy(loaded):
    lm = loaded("neox")
    ids = encode(lm)[0].tolist()
    a = continuation(lm.hooked, ids, 10, Sampling(1.5, 0, seed=7))
    assert a.ids == continuation(lm.hooked, ids, 10, Sampling(1.5, 0, seed=7)).ids
    assert a.ids != continuation(lm.hooked, ids, 10, Sampling(1.5, 0, seed=8)).ids
    assert continuation(lm.hooked, ids, 10, Sampling(1.0, 1, seed=3)).ids == continuation(lm.hooked, ids, 10).ids


def test_generation_stops_when_asked_and_at_the_models_last_position(loaded):
    lm = loaded("gpt2")
    ids = encode(lm)[0].tolist()
    seen = []
    with pytest.raises(Cancelled):
        continuation(lm.hooked, ids, 50, on_token=lambda t, p: seen.append(t), should_stop=lambda: len(seen) >= 3)
    assert len(seen) == 3
    n_ctx = lm.hooked.shape.n_ctx
    assert len(continuation(lm.hooked, ids, n_ctx).ids) == n_ctx - len(ids)  # up to the last position
    with pytest.raises(BadInput, match="positions"):
        continuation(lm.hooked, list(range(n_ctx)), 1)


def test_the_generate_analysis_shows_both_texts_and_records_the_interventions(loaded):
    from analyses.registry import get

    lm = loaded("gpt2")
    steer = Steer(torch.ones(lm.hooked.shape.d_model), "blocks.0.hook_resid_pre", 5.0)
    streamed = []
    table = get("generate")(lm, {"prompt": "When Mary and John", "max_tokens": 4}, edits=["L0H0:out:0=0", steer],
                            on_token=streamed.append)
    assert table.meta["edits"] == ["L0H0:out:0=0", "steer:v*5@blocks.0.hook_resid_pre"]
    assert set(table.columns) == {"p", "token", "p edited", "token edited"}
    assert len(table.labels) == 4 and table.meta["continuation"].split() == [t.strip() for t in table.columns["token"]]
    assert len(streamed) == 8 and streamed[-1].splitlines()[1].startswith("edited:")
    assert lm.hooked.standing == ()  # undone after the run


def test_mamba_conv_slice_ablation_carries_across_cached_steps(loaded):
    """The conv reads the previous positions' inputs from the kept state: ablating its -1 slice in
    every run gives the same tokens cached as re-run whole."""
    from analyses.models.hooks import Intervention

    lm = loaded("mamba")
    ids = encode(lm)[0].tolist()
    saved = lm.hooked.standing
    lm.hooked.standing = (Intervention("blocks.0.mixer.hook_conv_slice.-1", "zero"),
                          Intervention("blocks.1.mixer.hook_ssm_in", "add", value=torch.tensor(0.5), pos=slice(5, None)))
    try:
        cached, uncached = continuation(lm.hooked, ids, 8), continuation(lm.hooked, ids, 8, use_cache=False)
    finally:
        lm.hooked.standing = saved
    assert cached.ids == uncached.ids
    assert max(abs(a - b) for a, b in zip(cached.probs, uncached.probs)) < 1e-5
    assert cached.probs != continuation(lm.hooked, ids, 8).probs
