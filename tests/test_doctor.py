"""`workbench doctor`: versions, devices, the parity check, timings and limits; exit 0, or 2 for a
bad model spec."""

from __future__ import annotations

import json

from workbench.cli import main


def test_doctor_json_reports_the_box_and_the_model(capsys, checkpoints):
    assert main(["doctor", "--model", str(checkpoints["llama-gqa"]), "--device", "cpu", "--json"]) == 0
    rep = json.loads(capsys.readouterr().out)
    assert {"python", "torch", "cuda", "transformers", "textual", "mamba-ssm"} <= set(rep["versions"])
    cpu = rep["devices"][0]
    assert cpu["device"] == "cpu" and cpu["free_bytes"] > 0 and cpu["cores"] >= 1
    model = rep["model"]
    assert model["info"]["parity"]["ok"] and model["info"]["model_type"] == "llama" and model["weights_bytes"] > 0
    assert model["forward"]["seconds"] > 0 and model["sweep_batch"]["rows"] == 8 and model["sweep_batch"]["seconds"] > 0
    assert rep["limits"]["device"] == "cpu" and "GiB of RAM free" in rep["limits"]["advice"]
    assert rep["limits"]["checked_model"]["weights_bytes"] == model["weights_bytes"]


def test_doctor_text_on_the_default_toy(capsys):
    assert main(["doctor", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "model     toy:ioi (gpt2, float32, cpu" in out and "parity    parity ok" in out
    assert "one sweep batch (8 rows)" in out and out.startswith("versions  python")


def test_doctor_with_a_bad_model_spec_exits_2_naming_it(capsys):
    assert main(["doctor", "--model", "toy:nope"]) == 2
    out, err = capsys.readouterr()
    assert out == "" and "unknown toy 'nope'" in err
    assert main(["doctor", "--dtype", "float8"]) == 2
    assert "--dtype must be one of" in capsys.readouterr().err
