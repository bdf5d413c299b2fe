"""Every registered analysis on CUDA against the same run on CPU, on random GPT-2, NeoX, Llama-GQA
and Mamba checkpoints of a small and of GPT-2-small shape (Mamba: 24 layers of d 768, the 130M
model's). Marked ``gpu`` and skipped without CUDA:

    .venv/bin/python -m pytest tests/test_gpu.py -m gpu -q          # all of it
    .venv/bin/python -m pytest tests/test_gpu.py -m gpu -q -k small  # the small shape only (minutes)

- float32 on CUDA equals float32 on CPU within ``F32_RELATIVE`` of the result's largest number,
  with the same labels and rankings;
- bfloat16 on CUDA equals float32 on CUDA within ``BF16_RELATIVE`` (analyses with smooth numbers,
  ``BF16_SMOOTH``; counts such as accuracy are measured only); where bf16 rounding reorders a
  ranking (top edges, flagged components) the numbers cannot be paired and the case is an xfail
  naming that. ``BF16_RELATIVE`` is a first bound until a GPU run measures it: each case's measured
  error is appended to ``$WORKBENCH_GPU_REPORT`` (JSON lines) when set, for the note that states it.

``WORKBENCH_GPU_TEST_DEVICE=cpu`` runs the same comparisons with CPU as the device under test, to
check this module's own plumbing on a box without a GPU (it proves nothing about CUDA).
"""

from __future__ import annotations

import json
import math
import os

import pytest
import torch
from test_every_analysis import CASES

from analyses.registry import analyses
from workbench.cli import main

DEVICE = os.environ.get("WORKBENCH_GPU_TEST_DEVICE", "cuda")
pytestmark = [pytest.mark.gpu, pytest.mark.skipif(DEVICE == "cuda" and not torch.cuda.is_available(),
                                                  reason="needs a CUDA device")]

F32_RELATIVE = 1e-4
BF16_RELATIVE = 5e-2  # provisional: replace with the measured bound (see the module's doc)
# Analyses whose numbers are smooth functions of the activations; the others count (accuracy, flip
# rates, a greedy or binary search's choices, a fitted or trained model), and bf16 rounding moves a
# count by whole prompts on a random model whose logit differences are near zero: measured, reported,
# not bounded.
BF16_SMOOTH = {"dla", "logit-lens", "attention", "patch", "attrib", "path-patch", "composition", "head-spectra",
               "inhibition", "erasure-pr", "erasure-stream", "erasure-scatter", "erasure-causal", "erasure-effect",
               "neuron-congruence", "neuron-heads-prompt", "conv-slices"}
FAMILIES = {"gpt2": {}, "gpt_neox": {}, "llama": {"num_key_value_heads": 2}, "mamba": {}}  # llama: GQA
SHAPES = {"small": {}, "gpt2-small": {"d_model": 768, "n_layers": 12, "n_heads": 12, "n_ctx": 1024}}
MAMBA_SMALL = {"d_model": 768, "n_layers": 24}  # the GPT-2-small-sized Mamba (mamba-130m's shape)
SKIP = {"train-toy"}  # trains a new toy; it reads no model


def _shape(family: str, shape: str) -> dict:
    if family == "mamba" and shape == "gpt2-small":
        return MAMBA_SMALL
    heads = SHAPES[shape].get("n_heads", 4)
    kv = {"num_key_value_heads": heads // 2} if family == "llama" else {}
    return {**SHAPES[shape], **FAMILIES[family], **kv}


@pytest.fixture(scope="module")
def random_checkpoints(tmp_path_factory):
    """(family, shape) -> checkpoint folder, built on first use; every task's words are whole tokens."""
    from analyses.tasks import vocabulary
    from analyses.toys.checkpoints import NAMES, WORDS, build_checkpoint

    root, built = tmp_path_factory.mktemp("gpu-checkpoints"), {}
    words = list(dict.fromkeys(NAMES + WORDS + vocabulary()))

    def get(family: str, shape: str) -> str:
        if (family, shape) not in built:
            built[family, shape] = str(build_checkpoint(root / f"{family}-{shape}", family, words=words, seed=1,
                                                        jitter=0.05, **_shape(family, shape)))
        return built[family, shape]

    return get


def _argv(name: str, model: str) -> list[str]:
    args = list(CASES[name])
    i = args.index("--model")
    args[i + 1] = model
    return ["run", name, *args]


def _run(capsys, argv: list[str], device: str, dtype: str) -> tuple[int, dict | str]:
    code = main([*argv, "--device", device, "--dtype", dtype, "--json", "--no-memory-check"])
    out, err = capsys.readouterr()
    return code, (json.loads(out) if code == 0 else err)


def _leaves(doc, path: str = ""):
    """(path, value) of every number and string of a result, past the model's facts and timings."""
    if isinstance(doc, dict):
        for k, v in doc.items():
            if k not in ("model", "headline") and "seconds" not in k:  # a headline is numbers as text
                yield from _leaves(v, f"{path}.{k}")
    elif isinstance(doc, list):
        for i, v in enumerate(doc):
            yield from _leaves(v, f"{path}[{i}]")
    else:
        yield path, doc


def compare(ref: dict, got: dict) -> tuple[float, list[str]]:
    """(largest difference relative to the reference's largest |number|, where the two differ in
    anything but numbers: labels, rankings, shapes, missing values)."""
    a, b = dict(_leaves(ref)), dict(_leaves(got))
    if a.keys() != b.keys():
        return math.inf, [f"shape: {sorted(a.keys() ^ b.keys())[:3]}"]
    nums = [k for k, v in a.items() if isinstance(v, float) or (isinstance(v, int) and not isinstance(v, bool))]
    other = [k for k in a if k not in nums and a[k] != b[k]]
    scale = max([abs(a[k]) for k in nums if a[k] is not None] + [1e-12])
    diffs = [abs(a[k] - b[k]) for k in nums if a[k] is not None and b[k] is not None]
    other += [k for k in nums if (a[k] is None) != (b[k] is None)]
    return (max(diffs) / scale if diffs else 0.0), other


def _report(**row) -> None:
    path = os.environ.get("WORKBENCH_GPU_REPORT")
    if path:
        with open(path, "a") as f:
            f.write(json.dumps(row) + "\n")


CASE_IDS = [(f, s, n) for s in SHAPES for f in FAMILIES for n in sorted(CASES) if n not in SKIP]


@pytest.mark.parametrize(("family", "shape", "name"), CASE_IDS, ids=["-".join(c) for c in CASE_IDS])
def test_an_analysis_on_the_gpu_equals_it_on_the_cpu(family, shape, name, random_checkpoints, capsys):
    if not analyses()[name].available_for(family):
        pytest.skip(f"{name} does not apply to {family}")
    argv = _argv(name, random_checkpoints(family, shape))
    code, cpu = _run(capsys, argv, "cpu", "float32")
    if code == 2:
        pytest.skip(f"{name} refuses this checkpoint on CPU too: {cpu.strip()[:200]}")
    assert code == 0, cpu
    code, f32 = _run(capsys, argv, DEVICE, "float32")
    assert code == 0, f32
    assert f32["model"]["parity"]["ok"], f32["model"]["parity"]
    rel, other = compare(cpu, f32)
    _report(family=family, shape=shape, analysis=name, dtype="float32", relative=rel, differs=other[:5])
    assert not other and rel <= F32_RELATIVE, f"{name} on {DEVICE} float32: {rel:.2e} of scale, differs at {other[:5]}"
    code, bf16 = _run(capsys, argv, DEVICE, "bfloat16")
    assert code == 0, bf16
    rel, other = compare(f32, bf16)
    _report(family=family, shape=shape, analysis=name, dtype="bfloat16", relative=rel, differs=other[:5])
    if other:
        pytest.xfail(f"bfloat16 changes {name}'s labels or ranking ({other[:3]}): numbers not paired")
    if name in BF16_SMOOTH:
        assert rel <= BF16_RELATIVE, f"{name} in bfloat16: {rel:.2e} of scale"
