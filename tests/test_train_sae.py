"""`workbench train sae` and the SAE analyses through the real CLI: a trained folder loads and runs,
bad input exits 2 with a message naming it."""

from __future__ import annotations

import json

from analyses.sae.model import load_sae
from workbench.cli import main

PROMPT = "When Mary and John went to the store, John gave a drink to"


def test_train_sae_writes_a_saelens_folder_the_analyses_read(tmp_path, capsys):
    out = tmp_path / "sae"
    assert main(["train", "sae", "--model", "toy:ioi", "--hook", "blocks.0.hook_resid_post", "--steps", "30",
                 "--texts", "40", "--d-sae", "32", "--sparsity", "topk", "--k", "4", "--out", str(out), "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["path"] == str(out) and 0 < report["l0"] <= 4 and "fve_held_out" in report
    sae = load_sae(out)
    assert (sae.architecture, sae.k, sae.d_sae, sae.hook_name) == ("topk", 4, 32, "blocks.0.hook_resid_post")
    assert main(["run", "sae-features", "--model", "toy:ioi", "--prompt", PROMPT, "--sae", str(out), "--json"]) == 0
    grid = json.loads(capsys.readouterr().out)
    assert grid["axes"] == ["pos", "feature"] and len(grid["grid"]) == len(grid["prompt_tokens"])
    # A second run into the same folder is refused unless --force.
    assert main(["train", "sae", "--model", "toy:ioi", "--hook", "blocks.0.hook_resid_post", "--steps", "2",
                 "--out", str(out)]) == 2
    assert "--force" in capsys.readouterr().err


def test_bad_sae_input_exits_2_naming_it(tmp_path, capsys):
    assert main(["train", "sae", "--model", "toy:ioi", "--hook", "blocks.9.hook_nothing", "--steps", "2",
                 "--out", str(tmp_path / "x")]) == 2
    assert "blocks.9.hook_nothing" in capsys.readouterr().err
    (tmp_path / "bad").mkdir()
    (tmp_path / "bad" / "cfg.json").write_text('{"architecture": "gated", "hook_name": "blocks.0.hook_resid_pre"}')
    (tmp_path / "bad" / "sae_weights.safetensors").write_bytes(b"")
    assert main(["run", "sae-features", "--model", "toy:ioi", "--prompt", PROMPT, "--sae", str(tmp_path / "bad")]) == 2
    assert "gated" in capsys.readouterr().err
    assert main(["run", "sae-features", "--model", "toy:count01", "--prompt", "0 1 ="]) == 2
    assert "give --sae DIR" in capsys.readouterr().err
    assert main(["run", "dla", "--model", "toy:ioi", "--prompt", PROMPT, "--answer", " Mary",
                 "--edit", "sae:x:1=abc"]) == 2
    assert "'abc' is not a finite number" in capsys.readouterr().err


def test_a_feature_edit_on_the_cli_changes_the_logit_and_is_recorded(capsys):
    from analyses.sae.features import SHIPPED_SAES

    base = ["run", "dla", "--model", "toy:ioi", "--prompt", PROMPT, "--answer", " Mary", "--distractor", " John",
            "--json"]
    assert main(base) == 0
    plain = json.loads(capsys.readouterr().out)
    edit = f"sae:{SHIPPED_SAES / 'ioi'}:153=0"
    assert main([*base, "--edit", edit]) == 0
    ablated = json.loads(capsys.readouterr().out)
    assert ablated["edits"] == [edit] and ablated["logit"] < plain["logit"] - 1
