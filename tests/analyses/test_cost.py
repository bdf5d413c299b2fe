"""The run-cost estimator: every analysis has a formula; sizes come from the inputs."""

from __future__ import annotations

import subprocess
import sys

import pytest

from analyses.cost import Dims, TooBig, check_memory, estimate, estimate_run
from analyses.costs import COSTS
from analyses.registry import analyses

TOY = Dims("gpt2", 2, 32, 80, 4, 8, 128, 0, 0, seq=15, items=16)
MAMBA = Dims("mamba", 2, 32, 80, 0, 0, 0, 64, 16, seq=15, items=16)


def test_every_registered_analysis_has_a_cost_formula():
    missing = sorted(set(analyses()) - set(COSTS))
    assert not missing, f"analyses without a formula in analyses/costs/: {missing}"
    assert not set(COSTS) - set(analyses()), "formulas for analyses that do not exist"


@pytest.mark.parametrize("name", sorted(COSTS))
def test_each_estimate_is_sized_and_grows_with_its_inputs(name):
    a = analyses()[name]
    required = {p.name: "1" if p.kind in ("int", "ints") else "L0H0" if p.kind in ("text", "nodes") else "x"
                for p in a.params if p.required}
    params = {p.name: p.default for p in a.params} | required
    d = MAMBA if not a.available_for("gpt2") else TOY
    more = {**params, **({"n": 1000 * (params["n"] or 16)} if "n" in params else {})}
    small, large = estimate(a, params, d), estimate(a, more, Dims(**{**d.__dict__, "items": 1000 * d.items}))
    assert small.bytes > 0 and small.forwards >= 0 and small.floor >= 0 and small.shrink
    if small.forwards and a.tab != "prompt":  # analyses of many inputs: more inputs, more passes, no less memory
        assert large.forwards > small.forwards and large.bytes >= small.bytes


def test_a_huge_patching_run_is_refused_with_its_estimate(loaded):
    lm = loaded("gpt2")
    patch = analyses()["patch"]
    params = patch.bind({"task": "ioi", "n": 100_000_000, "site": "head_out"})
    with pytest.raises(TooBig) as e:
        check_memory(lm, patch, params)
    assert "GB of memory" in str(e.value) and "--n" in str(e.value) and e.value.cost.forwards > 1e8
    small = patch.bind({"task": "ioi", "n": 16, "site": "head_out"})
    assert check_memory(lm, patch, small).bytes < 2**30
    assert estimate_run(lm, patch, small).floor > 32  # the two baselines' 2 x 16 and the sweep


def test_the_estimator_and_the_registry_import_without_torch():
    code = "import sys, analyses.cost, analyses.costs, analyses.registry; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True).stdout
    assert out.strip() == "False"
