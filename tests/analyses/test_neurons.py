"""Next-token neurons (paper 2): congruence by hand, the trimming rule, head attribution against an
intervention, balanced accuracy and KS by hand and against scipy, the LLM endpoint on a loopback
server, and the CLI."""

from __future__ import annotations

import json
import math
import random
import threading
from http.server import BaseHTTPRequestHandler, HTTPServer
from typing import ClassVar

import pytest
import torch
from conftest import PROMPT

from analyses.errors import BadInput
from analyses.llm import Explainer, parse_reply
from analyses.models.hooks import Intervention
from analyses.neurons import (
    Rule,
    active_heads,
    balanced_accuracy,
    fit_rule,
    head_attribution,
    head_labels,
    ks_2samp,
    latest_start,
    neuron_activations,
    neuron_congruence,
    shuffled_baseline,
    top_documents,
    trim,
    word_token_mask,
)
from workbench.cli import main

# ---- congruence ----------------------------------------------------------------------------


def test_congruence_by_hand_on_a_tiny_model(checkpoints):
    """W_out[n] = e0 - e1, W_U rows zero except t5 = e0, t6 = e1, t7 = 3 e0, final-norm weight 2:
    dots 2, -2, 6 (the rest 0), vocabulary mean 6/V; word tokens exclude t7."""
    from sessions.loading import load

    lm = load(str(checkpoints["gpt2"]), device="cpu")
    m = lm.hooked
    hf = m.model
    d, vocab = m.shape.d_model, m.shape.d_vocab
    with torch.no_grad():
        hf.transformer.ln_f.weight.fill_(2.0)
        hf.lm_head.weight.zero_()  # tied to the embedding: fine for a weights-only measure
        hf.lm_head.weight[5, 0], hf.lm_head.weight[6, 1], hf.lm_head.weight[7, 0] = 1.0, 1.0, 3.0
        w = hf.transformer.h[1].mlp.c_proj.weight  # Conv1D [d_mlp, d_model]
        w[3].zero_()
        w[3, 0], w[3, 1] = 1.0, -1.0
    mask = torch.ones(vocab, dtype=torch.bool)
    mask[7] = False
    for chunk in (None, 3, 7):  # chunked walks of the vocabulary agree with one pass
        best, arg = neuron_congruence(m, 1, mask, chunk=chunk)
        assert int(arg[3]) == 5 and float(best[3]) == pytest.approx(2 - 6 / vocab, abs=1e-5)
        best, arg = neuron_congruence(m, 1, None, chunk=chunk)
        assert int(arg[3]) == 7 and float(best[3]) == pytest.approx(6 - 6 / vocab, abs=1e-5)
    assert d > 2


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa"])
def test_chunked_congruence_matches_the_full_matrix(loaded, name):
    m = loaded(name).hooked
    _, _, w_out, _ = m.writer_weights(0)
    w_u = m.unembed_module().weight.float()
    w_lnf, _ = m.final_norm_params()
    w = w_out.float()
    if m.shape.norm == "layernorm":
        w = w - w.mean(-1, keepdim=True)
    full = (w * w_lnf) @ w_u.T  # [d_mlp, vocab]
    full = full - full.mean(-1, keepdim=True)
    best, arg = neuron_congruence(m, 0, chunk=5)
    assert torch.allclose(best, full.max(-1).values, atol=1e-5) and torch.equal(arg, full.argmax(-1))


def test_word_tokens_word_level_and_bpe(loaded):
    from tokenizers import Tokenizer, models, pre_tokenizers
    from transformers import GPT2TokenizerFast

    tok = loaded("gpt2").tokenizer  # word level: every non-special token
    mask = word_token_mask(tok, len(tok) + 3)
    assert not mask[tok.pad_token_id] and not mask[tok.unk_token_id] and mask[tok.convert_tokens_to_ids("Mary")]
    assert not mask[len(tok):].any()  # padding rows of the unembedding
    vocab = {"<|endoftext|>": 0, "Ġthe": 1, "Ġa": 2, "the": 3, "Ġcat": 4, "Ġ": 5}
    bpe = Tokenizer(models.BPE(vocab=vocab, merges=[]))
    bpe.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    fast = GPT2TokenizerFast(tokenizer_object=bpe, eos_token="<|endoftext|>", bos_token="<|endoftext|>")
    assert word_token_mask(fast, 6).tolist() == [False, True, False, False, True, False]


# ---- capture, top documents, trimming ---------------------------------------------------------


def test_captured_columns_equal_the_full_activation(loaded):
    lm = loaded("gpt2")
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    full = lm.hooked.run(ids, capture=["blocks.1.mlp.hook_post"]).cache["blocks.1.mlp.hook_post"]
    for whole in (False, True):
        kept = neuron_activations(lm.hooked, ids, 1, [7, 2], full=whole)
        assert torch.allclose(kept, full[..., [7, 2]])


def test_top_documents_are_the_highest_maxima(loaded):
    from analyses.corpus import corpus_batches

    lm = loaded("gpt2")
    texts = ["When Mary and John went", "to the store", "John gave a drink to Mary", "Mary", "the cat sat on the mat"]
    docs, read, stopped = top_documents(lm.hooked, corpus_batches(lm.tokenizer, texts, 2, 64), 1, 5, k=2)
    maxima = []
    for t in texts:
        ids = torch.tensor([lm.tokenizer(t)["input_ids"]])
        acts = neuron_activations(lm.hooked, ids, 1, [5])[0, :, 0]
        maxima.append((float(acts.max()), int(acts.argmax())))
    order = sorted(range(len(texts)), key=lambda i: -maxima[i][0])[:2]
    assert read == 5 and not stopped
    assert [-d.index for d in docs] == order and [d.pos for d in docs] == [maxima[i][1] for i in order]
    assert [d.act for d in docs] == pytest.approx([maxima[i][0] for i in order])


def test_the_trimming_rule_on_a_hand_made_case():
    # activation at the last token when the prompt starts at s = 0..5 (original 5.0, threshold 4.0):
    # not monotone in s; the latest start that keeps >= 4.0 is 4.
    at = [5.0, 4.9, 4.5, 3.0, 4.1, 1.0]
    asked: list[list[int]] = []

    def acts(starts):
        asked.append(starts)
        return [at[s] for s in starts]

    assert latest_start(acts, 5, 5.0, 0.8, batch=2) == 4
    assert asked == [[5], [4, 3]]  # scored from the end in growing chunks, stopping at the first that qualifies
    assert latest_start(acts, 5, 5.0, 0.95, batch=2) == 1
    assert latest_start(lambda s: [0.0] * len(s), 5, 5.0, 0.8) == 0  # none qualifies: the whole text
    assert latest_start(acts, 5, -1.0, 0.8, first=1) == 1  # a non-positive activation is not trimmed


def test_a_trimmed_prompt_keeps_the_share_and_one_token_less_does_not(loaded):
    lm = loaded("gpt2")
    m = lm.hooked
    ids = lm.tokenizer(PROMPT)["input_ids"]
    acts = neuron_activations(m, torch.tensor([ids]), 1, [0])[0, :, 0]
    pos = int(acts.argmax())
    kept, start, kept_acts = trim(m, ids, pos, 1, 0, 0.8, bos=None)
    assert kept == ids[start : pos + 1]
    assert kept_acts == pytest.approx(neuron_activations(m, torch.tensor([kept]), 1, [0])[0, :, 0].tolist(), abs=1e-6)

    def last(x):
        return float(neuron_activations(m, torch.tensor([x]), 1, [0])[0, -1, 0])

    assert last(kept) >= 0.8 * float(acts[pos]) - 1e-6
    for s in range(start + 1, pos + 1):  # every later start falls below the share
        assert last(ids[s : pos + 1]) < 0.8 * float(acts[pos])


# ---- head -> neuron attribution -----------------------------------------------------------------


@pytest.mark.parametrize("name", ["gpt2", "llama-gqa", "neox-seq"])
def test_attribution_of_a_same_layer_head_is_its_effect_with_the_norm_scale_frozen(loaded, name):
    """Zeroing head h of the neuron's own layer, with the MLP norm's scale frozen at its clean
    value, lowers the neuron's pre-activation by exactly the head's attribution."""
    lm = loaded(name)
    m = lm.hooked
    layer, neuron = 1, 3
    ids = torch.tensor([lm.tokenizer(PROMPT)["input_ids"]])
    attr = head_attribution(m, ids, [ids.shape[1]], layer, neuron)[0]
    names = [f"blocks.{layer}.mlp.hook_pre", f"blocks.{layer}.ln2.hook_scale"]
    clean = m.run(ids, capture=names).cache
    labels = head_labels(m, layer)
    assert len(labels) == 2 * m.shape.n_heads and len(attr) == len(labels)
    for h in range(m.shape.n_heads):
        ivs = [Intervention(f"blocks.{layer}.attn.hook_z", op="zero", head=h),
               Intervention(names[1], value=clean[names[1]])]
        ablated = m.run(ids, capture=[names[0]], interventions=ivs).cache[names[0]]
        drop = float(clean[names[0]][0, -1, neuron] - ablated[0, -1, neuron])
        assert attr[m.shape.n_heads + h] == pytest.approx(drop, abs=1e-4)


def test_parallel_blocks_count_only_earlier_layers(loaded):
    m = loaded("neox").hooked
    assert head_labels(m, 1) == [f"L0H{h}" for h in range(m.shape.n_heads)]


def test_active_is_above_mean_plus_two_population_sd():
    attr = torch.tensor([[10.0, 0, 0, 0, 0, 0, 0, 0], [1.0, 1, 1, 1, 1, 1, 1, 1.5]])
    # row 0: mean 1.25, population sd sqrt(7) * 10 / 8 = 3.307 -> threshold 7.86; row 1: 1.0625 + 2 * 0.165
    assert active_heads(attr).tolist() == [[True] + [False] * 7, [False] * 7 + [True]]


# ---- explanations and scores ------------------------------------------------------------------


def test_balanced_accuracy_on_a_hand_made_case():
    pred = [True, True, False, False, True]
    truth = [True, False, False, False, True]
    assert balanced_accuracy(pred, truth) == pytest.approx((2 / 2 + 2 / 3) / 2)
    assert balanced_accuracy([True] * 4, [True, True, False, False]) == 0.5  # always "active": chance
    assert math.isnan(balanced_accuracy([True, False], [True, True]))


def test_the_rule_explainer_finds_the_marker_and_beats_shuffled_labels():
    rng = random.Random(0)
    filler = ["cake", "ring", "book", "hat", "sock"]
    prompts, labels = [], []
    for i in range(40):
        words = [rng.choice(filler) for _ in range(5)]
        if i % 2:
            words.insert(rng.randrange(5), "school")
        prompts.append(words)
        labels.append(bool(i % 2))
    rule, score = fit_rule(prompts[:20], labels[:20])
    assert rule == Rule(("school",), True) and score == 1.0 and rule.text() == "contains 'school'"
    pred = [rule(p) for p in prompts[20:]]
    assert balanced_accuracy(pred, labels[20:]) == 1.0
    base, p = shuffled_baseline(pred, labels[20:], n=300)
    assert 0.4 < base < 0.6 and p < 0.01
    assert fit_rule(prompts, [True] * 40) == (None, pytest.approx(float("nan"), nan_ok=True))


def test_ks_statistic_by_hand_and_against_scipy():
    from scipy import stats

    assert ks_2samp([1, 2, 3], [4, 5])[0] == 1.0
    assert ks_2samp([1, 2, 3, 4], [3, 4, 5, 6])[0] == 0.5
    rng = random.Random(1)
    for _ in range(5):
        a = [rng.gauss(0, 1) for _ in range(rng.randint(3, 40))]
        b = [rng.gauss(0.5, 1) for _ in range(rng.randint(3, 40))]
        ref = stats.ks_2samp(a, b)
        d, p = ks_2samp(a, b)
        assert d == pytest.approx(ref.statistic) and p == pytest.approx(ref.pvalue)
    assert all(math.isnan(x) for x in ks_2samp([], [1.0]))


# ---- the LLM endpoint, on a loopback server ------------------------------------------------------


class _Handler(BaseHTTPRequestHandler):
    seen: ClassVar[list] = []

    def do_POST(self):
        body = json.loads(self.rfile.read(int(self.headers["Content-Length"])))
        type(self).seen.append((self.path, self.headers.get("Authorization"), body))
        answer = "Yes" if body["max_tokens"] == 1 else "Active when the context holds 'school'."
        data = json.dumps({"choices": [{"message": {"role": "assistant", "content": answer}}]}).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, *args):
        pass


def test_the_endpoint_request_and_reply_on_a_loopback_server(monkeypatch):
    server = HTTPServer(("127.0.0.1", 0), _Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        monkeypatch.setenv("WB_TEST_KEY", "sk-test")
        llm = Explainer(f"http://127.0.0.1:{server.server_port}/v1/", "tiny", "WB_TEST_KEY")
        text = llm.explain(" yes", ["a school b"], ["a b"])
        assert text == "Active when the context holds 'school'."
        assert llm.classify(text, "c school d") is True
        (path, auth, body), (_, _, body2) = _Handler.seen[-2:]
        assert path == "/v1/chat/completions" and auth == "Bearer sk-test"
        assert body["model"] == "tiny" and body["max_tokens"] == 200 and "a school b yes" in body["messages"][0]["content"]
        assert body2["max_tokens"] == 1 and 'Example: """c school d"""' in body2["messages"][0]["content"]
        monkeypatch.delenv("WB_TEST_KEY")
        assert "Authorization" not in llm.request("x", 1).headers
    finally:
        server.shutdown()
        server.server_close()
    with pytest.raises(BadInput, match="not a chat completion"):
        parse_reply(b'{"error": "nope"}')
    with pytest.raises(BadInput, match="http"):
        Explainer("ftp://x").request("x", 1)


# ---- the CLI ----------------------------------------------------------------------------------

CORPUS_LINES = ["When Mary and John went to the store", "John gave a drink to Mary", "the cat sat on the mat",
                "Mary and John went to the park", "When Alice and Bob went to the school , Bob gave a book to"]


def test_cli_neuron_analyses_json(capsys, tmp_path, checkpoints):
    corpus = tmp_path / "c.txt"
    corpus.write_text("\n".join(CORPUS_LINES * 3) + "\n")
    model = str(checkpoints["gpt2"])
    assert main(["run", "neuron-congruence", "--model", model, "--top", "2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["layer"] for r in out["rows"]] == [0, 0, 1, 1] and out["words_only"] is True
    common = ["--model", model, "--layer", "1", "--neuron", "4", "--corpus", str(corpus), "--top", "6", "--batch", "4"]
    assert main(["run", "neuron-max-acts", *common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rows"]) == 6 and out["documents"] == 15 and out["value_name"] == "activation"
    for row, facts in zip(out["rows"], out["prompts"]):
        if facts["max_act"] > 0:  # a non-positive maximum is not trimmed
            assert row["values"][-1] >= 0.8 * facts["max_act"] - 1e-5
    assert main(["run", "neuron-heads", *common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in out["rows"]] == [f"L{lay}H{h}" for lay in (0, 1) for h in range(4)]
    assert all(0 <= r["active_rate"] <= 1 for r in out["rows"])
    assert main(["run", "neuron-ablation", *common, "--heads", "L1H0,L0H2", "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert [r["label"] for r in out["rows"]] == ["L1H0", "L0H2", "all"]
    assert main(["run", "neuron-explain", *common, "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["analysis"] == "neuron-explain" and out["llm"] is None
    assert main(["run", "neuron-heads-prompt", "--model", model, "--prompt", PROMPT, "--layer", "1", "--neuron", "2",
                 "--json"]) == 0
    out = json.loads(capsys.readouterr().out)
    assert len(out["rows"]) == 8 and out["neuron"] == 2


@pytest.mark.parametrize("argv, message", [
    (["neuron-max-acts", "--neuron", "1", "--task", "ioi", "--corpus", "x.txt"], "not both"),
    (["neuron-heads", "--neuron", "1"], "--corpus FILE"),
    (["neuron-heads", "--neuron", "-1", "--task", "ioi"], "--neuron must be at least 0"),
    (["neuron-explain", "--neuron", "1", "--task", "ioi", "--ratio", "2"], "at most 1"),
])
def test_nonsense_is_refused_before_the_model_loads(capsys, argv, message):
    code = main(["run", argv[0], "--model", "toy:nope", *argv[1:]])
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_a_neuron_outside_the_mlp_is_refused(capsys, checkpoints, tmp_path):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "neuron-max-acts", "--model", "toy:nope", "--task", "ioi"])
    assert exit_.value.code == 2 and "--neuron" in capsys.readouterr().err
    corpus = tmp_path / "c.txt"
    corpus.write_text("Mary and John\n")
    code = main(["run", "neuron-max-acts", "--model", str(checkpoints["gpt2"]), "--neuron", "999", "--corpus",
                 str(corpus)])
    assert code == 2 and "the MLP has 128 neurons" in capsys.readouterr().err
    code = main(["run", "neuron-ablation", "--model", str(checkpoints["gpt2"]), "--neuron", "1", "--corpus",
                 str(corpus), "--heads", "L5H0"])
    assert code == 2 and "L5H0 not among the heads" in capsys.readouterr().err


def test_the_lookup_toy_shows_the_marker_head(capsys):
    """toy:lookup: layer-1 neuron 11 writes ' yes'; over the task's texts exactly one head (L0H5) is
    active on 25-75 % of them, the n-gram rule 'contains school' explains it on held-out texts, and
    the KS test separates its ablation effects on active and inactive texts."""
    common = ["--model", "toy:lookup", "--layer", "1", "--neuron", "11", "--task", "lookup", "--n", "80", "--top", "80",
              "--json"]
    assert main(["run", "neuron-congruence", "--model", "toy:lookup", "--layers", "1", "--top", "1", "--json"]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["label"] == "L1N11" and row["token"].strip() == "yes"
    assert main(["run", "neuron-heads", *common]) == 0
    rows = json.loads(capsys.readouterr().out)["rows"]
    assert [r["label"] for r in rows if r["selected"]] == ["L0H5"]
    assert main(["run", "neuron-explain", *common]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["explanation"] == "contains 'school'" and row["balanced_accuracy"] >= 0.9
    assert row["shuffled_baseline"] < 0.7
    assert main(["run", "neuron-ablation", *common]) == 0
    row = json.loads(capsys.readouterr().out)["rows"][0]
    assert row["label"] == "L0H5" and row["ks_d"] > 0.8 and row["ks_p"] < 1e-6


def test_no_head_in_the_active_band_is_a_clear_error_naming_the_most_active():
    """On a neuron's top texts alone, the head that drives it is active on all of them: nothing to
    explain or ablate, and the message says which head and how to get inactive texts."""
    import torch

    from analyses.errors import BadInput
    from analyses.neurons import selected_heads

    labels = ["L0H0", "L0H1", "L0H2"]
    assert selected_heads(torch.tensor([1.0, 0.5, 0.0]), labels, 0.25, 0.75) == [1]
    with pytest.raises(BadInput, match=r"most active: L0H2 1\.00, L0H0 0\.10.*--top"):
        selected_heads(torch.tensor([0.1, 0.0, 1.0]), labels, 0.25, 0.75)
