"""The public CLI contract (SPEC.md): JSON shapes, labels, and exit code 2 on bad input."""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from conftest import PROMPT

from workbench.cli import main


def _run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def _dla(capsys, model, *extra):
    return _run(capsys, "run", "dla", "--model", str(model), "--prompt", PROMPT, "--answer", " Mary", *extra)


@pytest.mark.parametrize("by", ["layer", "head", "neuron"])
def test_dla_json_contract(capsys, checkpoints, by):
    code, out, err = _dla(capsys, checkpoints["gpt2"], "--distractor", " John", "--by", by, "--json", "--device", "cpu")
    assert code == 0, err
    data = json.loads(out)
    assert data["prompt_tokens"][:3] == ["When", "Mary", "and"]
    labels = [r["label"] for r in data["rows"]]
    assert labels[:2] == ["embed", "pos_embed"] and labels[-1] == "bias"
    expected = {"layer": "L1ATTN", "head": "L1H3", "neuron": "L1N127"}[by]
    assert expected in labels and ("L0MLP" in labels) == (by != "neuron")
    total = sum(r["value"] for r in data["rows"])
    assert abs(total - data["logit"]) <= 1e-4 * max(1, abs(data["logit"]))


def test_dla_mamba_labels_and_text_output(capsys, checkpoints):
    code, out, _ = _dla(capsys, checkpoints["mamba"], "--json")
    assert code == 0
    assert [r["label"] for r in json.loads(out)["rows"]] == ["embed", "L0", "L1", "bias"]
    code, out, _ = _dla(capsys, checkpoints["gpt2"], "--by", "neuron")
    assert code == 0 and "logit" in out and "more rows" in out  # large tables show their top rows


def test_logit_lens_and_models(capsys, checkpoints):
    code, out, _ = _run(capsys, "run", "logit-lens", "--model", str(checkpoints["neox"]), "--prompt", PROMPT,
                        "--answer", " Mary", "--json")
    assert code == 0 and [r["label"] for r in json.loads(out)["rows"]] == ["embed", "L0", "L1"]
    code, out, _ = _run(capsys, "models", "--json")
    specs = [m["spec"] for m in json.loads(out)["models"]]
    assert code == 0 and "toy:ioi" in specs


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "nobody/missing"], "unknown model"),
        (["--model", "toy:nope"], "unknown toy"),
        (["--prompt", ""], "empty"),
        (["--answer", " Zorro"], "not in the model's vocabulary"),
        (["--answer", "Mary John"], "2 tokens"),
        (["--prompt", "Mary " * 80], "context is 64"),
        (["--distractor", " Mary"], "same token"),
        (["--by", "head", "--model", "MAMBA"], "Mamba has no heads"),
        (["--pos", "99"], "outside"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(capsys, checkpoints, args, message):
    argv = {"--model": str(checkpoints["gpt2"]), "--prompt": PROMPT, "--answer": " Mary"}
    for flag, value in zip(args[::2], args[1::2]):
        argv[flag] = str(checkpoints["mamba"]) if value == "MAMBA" else value
    code, out, err = _run(capsys, "run", "dla", *[x for kv in argv.items() for x in kv])
    assert code == 2 and out == ""
    assert message in err and err.startswith("workbench: error:")


def test_unsupported_architecture_exits_2(capsys, tmp_path):
    (tmp_path / "config.json").write_text(json.dumps({"model_type": "t5"}))
    code, _, err = _dla(capsys, tmp_path)
    assert code == 2 and "unsupported architecture 't5'" in err


def test_the_installed_console_script(checkpoints):
    """The real `workbench` binary, as scripts outside the repo call it."""
    exe = os.path.join(os.path.dirname(sys.executable), "workbench")
    cmd = [exe, "run", "dla", "--model", str(checkpoints["llama-gqa"]), "--prompt", PROMPT, "--answer", " Mary",
           "--distractor", " John", "--by", "head", "--json"]
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    data = json.loads(done.stdout)
    assert data["prompt_tokens"][0] == "[BOS]" and data["rows"][0]["label"] == "embed"
    bad = subprocess.run(cmd[:-1] + ["--prompt", ""], capture_output=True, text=True, timeout=120)
    assert bad.returncode == 2 and "empty" in bad.stderr


def test_eval_json_contract_and_pair_files(capsys, tmp_path):
    code, out, err = _run(capsys, "run", "eval", "--model", "toy:count01", "--task", "count01", "--n", "60", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["task"] == "count01" and data["n"] == 60
    assert 0 <= data["accuracy"] <= 1 and isinstance(data["mean_logit_diff"], float)
    assert {r["label"] for r in data["rows"]} >= {"len4", "len16", "all"}
    pairs = tmp_path / "pairs.jsonl"
    pairs.write_text('{"clean": "1 1 0 =", "corrupt": "1 0 0 =", "answer": " yes", "distractor": " no"}\n{oops\n')
    code, out, err = _run(capsys, "run", "eval", "--model", "toy:count01", "--pairs", str(pairs))
    assert code == 2 and "pairs.jsonl:2" in err and out == ""
    code, _, err = _run(capsys, "run", "eval", "--model", "toy:count01", "--task", "sorting")
    assert code == 2 and "unknown task 'sorting'" in err


def test_train_writes_a_loadable_checkpoint(capsys, tmp_path):
    out_dir = tmp_path / "c01"
    code, out, err = _run(capsys, "train", "count01", "--steps", "20", "--out", str(out_dir))
    assert code == 0 and "20/20" in err and str(out_dir) in out
    code, out, _ = _run(capsys, "run", "eval", "--model", str(out_dir), "--task", "count01", "--n", "20", "--json")
    assert code == 0 and json.loads(out)["n"] == 20
    code, _, err = _run(capsys, "train", "nope")
    assert code == 2 and "no training recipe" in err


def test_patch_json_contract(capsys, checkpoints):
    base = ["run", "patch", "--model", str(checkpoints["gpt2"]), "--clean", PROMPT,
            "--corrupt", PROMPT.replace("John gave", "Mary gave"), "--answer", " Mary", "--distractor", " John"]
    code, out, err = _run(capsys, *base, "--site", "head_out", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["site"] == "head_out" and data["metric"] == "logit_diff"
    assert data["axes"] == ["layer", "pos", "head"] and isinstance(data["clean"], float)
    n_tokens = len(data["prompt_tokens"])
    assert len(data["grid"]) == 2 and len(data["grid"][0]) == n_tokens and len(data["grid"][0][0]) == 4
    code, out, _ = _run(capsys, *base, "--site", "resid_pre", "--json")
    assert json.loads(out)["axes"] == ["layer", "pos"]
    code, out, _ = _run(capsys, *base, "--site", "mlp_out")
    assert code == 0 and "L1" in out
    code, out, _ = _run(capsys, *base, "--site", "head_out", "--positions", "-1", "--heads", "1,3", "--json")
    part = json.loads(out)
    assert part["axis_labels"]["head"] == ["H1", "H3"] and len(part["axis_labels"]["pos"]) == 1
    chosen = [value for row in part["grid"] for value in row[0]]
    assert chosen == pytest.approx([v for row in data["grid"] for v in (row[-1][1], row[-1][3])], abs=1e-5)


@pytest.mark.parametrize("extra, message", [
    (["--site", "resid_pre", "--corrupt", "When Mary went to the store, John gave a drink to"], "differ in token length"),
    (["--site", "conv"], "not available for gpt2"),
    (["--site", "resid_pre", "--distractor", " Zorro"], "not in the model's vocabulary"),
    (["--site", "head_out", "--positions", "1,x"], "whole numbers"),
    (["--site", "head_out", "--heads", "4"], "heads must be between -4 and 3"),
])
def test_bad_patch_requests_exit_2(capsys, checkpoints, extra, message):
    argv = {"--model": str(checkpoints["gpt2"]), "--clean": PROMPT, "--corrupt": PROMPT.replace("John gave", "Mary gave"),
            "--answer": " Mary", "--distractor": " John"}
    argv.update(dict(zip(extra[::2], extra[1::2])))
    code, out, err = _run(capsys, "run", "patch", *[x for kv in argv.items() for x in kv])
    assert code == 2 and message in err and out == ""


def test_attrib_eap_and_path_patch_commands(capsys, checkpoints):
    base = ["--model", str(checkpoints["gpt2"]), "--clean", PROMPT, "--corrupt", PROMPT.replace("John gave", "Mary gave"),
            "--answer", " Mary", "--distractor", " John", "--json"]
    code, out, err = _run(capsys, "run", "attrib", *base, "--site", "head_out")
    assert code == 0, err
    assert json.loads(out)["axes"] == ["layer", "pos", "head"]
    code, out, err = _run(capsys, "run", "eap", *base, "--ig", "2", "--top", "5")
    data = json.loads(out)
    assert code == 0 and data["method"] == "EAP-IG (2 steps)" and data["circuit"]["edges_kept"] == 5
    scores = [abs(r["score"]) for r in data["rows"]]
    assert scores == sorted(scores, reverse=True) and "->" in data["rows"][0]["label"]
    code, out, _ = _run(capsys, "run", "path-patch", *base, "--senders", "input", "--receivers", "logits")
    rows = {r["label"]: r["value"] for r in json.loads(out)["rows"]}
    assert code == 0 and set(rows) == {"clean", "corrupt", "patched"}
    for senders, receivers in (("", "logits"), ("L1H0", "L0H1.q")):  # nothing to patch is an error, not a no-op
        code, out, err = _run(capsys, "run", "path-patch", *base, "--senders", senders, "--receivers", receivers)
        assert code == 2 and out == "", (senders, receivers)
    code, _, err = _run(capsys, "run", "path-patch", *base, "--senders", "L7H0", "--receivers", "logits")
    assert code == 2 and "unknown node" in err


def test_token_set_metric_and_threshold_circuits(capsys, checkpoints):
    base = ["--model", str(checkpoints["gpt2"]), "--clean", PROMPT, "--corrupt", PROMPT.replace("John gave", "Mary gave"),
            "--answer", " Mary", "--distractor", " John", "--json"]
    code, out, err = _run(capsys, "run", "patch", *base, "--site", "resid_pre", "--all-pos", "--metric", "tokens",
                          "--tokens", " Mary, Alice")
    data = json.loads(out)
    assert code == 0, err
    assert data["grid"] == pytest.approx([data["clean"]] * 2, abs=1e-5) and 0 < data["clean"] < 1
    code, out, err = _run(capsys, "run", "eap", *base, "--threshold", "0")
    assert code == 0 and json.loads(out)["circuit"]["faithfulness"] == pytest.approx(1.0, abs=1e-5)
    code, _, err = _run(capsys, "run", "patch", *base, "--site", "resid_pre", "--metric", "tokens")
    assert code == 2 and "token set" in err


def test_count01_head_metrics_from_the_cli(capsys):
    code, out, err = _run(capsys, "run", "count-heads", "--model", "toy:count01", "--n", "60", "--json")
    assert code == 0, err
    rows = {r["label"]: r for r in json.loads(out)["rows"]}
    assert set(rows) == {"L0H0", "L0H1", "L0H2", "L0H3", "model"} and 0.5 <= rows["L0H0"]["auc"] <= 1
    code, _, err = _run(capsys, "run", "count-attention", "--model", "toy:count01", "--w01s", "1,x")
    assert code == 2 and "--w01s" in err


def test_a_run_with_no_options_uses_the_models_own_defaults(capsys):
    """`workbench run NAME --model SPEC` resolves its defaults for the model, as the TUI's forms
    open on them: the toy's own task as the pairs, its family's site, its last layer."""
    code, out, err = _run(capsys, "run", "mamba-removal", "--model", "toy:ioi-mamba", "--json")
    assert code == 0, err
    assert json.loads(out)["data"] == "task ioi-abc"
    code, out, err = _run(capsys, "run", "patch", "--model", "toy:ioi", "--n", "4", "--json")
    assert code == 0, err
    data = json.loads(out)
    assert data["site"] == "head_out" and data["data"] == "task ioi" and data["n_pairs"] == 4
    code, out, err = _run(capsys, "run", "name-arith", "--model", "toy:ioi-mamba", "--n", "10", "--n-avg", "60",
                          "--json")
    assert code == 0, err
    assert json.loads(out)["layer"] == 1
    code, out, err = _run(capsys, "run", "patch", "--model", "toy:count01")
    assert code == 2 and "give --clean" in err  # no pairs of its own task: the pair must be given


def test_a_run_larger_than_memory_is_refused_at_once_with_its_estimate(capsys, monkeypatch):
    """Defect: `run patch --task ioi --n 100000000` printed nothing and grew to 17 GB in 10 minutes."""
    import time

    t0 = time.monotonic()
    code, out, err = _run(capsys, "run", "patch", "--model", "toy:ioi", "--task", "ioi", "--n", "100000000",
                          "--site", "head_out", "--device", "cpu")
    assert code == 2 and out == "" and time.monotonic() - t0 < 60
    assert "patch would need about" in err and "GB of memory" in err and "forward passes" in err
    assert "fewer pairs (--n)" in err and "--no-memory-check" in err
    monkeypatch.setenv("WORKBENCH_MEMORY_MB", "1")  # a box with 1 MB to spare: any run is too large
    small = ["run", "patch", "--model", "toy:ioi", "--task", "ioi", "--n", "4", "--site", "resid_pre", "--json"]
    code, out, err = _run(capsys, *small)
    assert code == 2 and "MB of memory" in err and out == ""
    code, out, err = _run(capsys, *small, "--no-memory-check")
    assert code == 0 and json.loads(out)["site"] == "resid_pre"


def test_a_patching_headline_measures_change_from_the_run_it_patches_into(capsys):
    """Noising writes corrupted activations into the clean run: its largest change is from clean
    (the headline said "from corrupt" for every direction). Conv slices share the same facts."""
    code, out, err = _run(capsys, "run", "patch", "--model", "toy:ioi", "--task", "ioi", "--n", "4", "--site",
                          "resid_pre", "--direction", "noise", "--json")
    assert code == 0, err
    facts = json.loads(out)["headline"]
    assert facts[0].startswith("site resid_pre (noise), metric logit_diff") and "largest change from clean" in facts[1]
    code, out, err = _run(capsys, "run", "conv-slices", "--model", "toy:ioi-mamba", "--task", "ioi-abc", "--n", "4",
                          "--json")
    assert code == 0, err
    facts = json.loads(out)["headline"]
    assert facts[0].startswith("noise patching, metric nld") and "largest change from clean" in facts[1]  # its default
