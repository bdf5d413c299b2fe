"""The analysis registry: one declaration drives the CLI, the TUI form, the stored parameters and
the docs, and the CLI refuses nonsense with exit 2 before any model loads."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CORRUPT, PROMPT

from analyses.errors import BadInput
from analyses.registry import REGISTRY, Analysis, Param, analyses, declare, with_table
from analyses.results import Table
from workbench.cli import build_parser, main

README = Path(__file__).parents[2] / "README.md"


def test_the_readme_table_is_the_generated_one():
    text = README.read_text()
    assert with_table(text) == text, "run: python -m analyses.registry README.md"


def test_every_parameter_has_its_cli_option_and_help():
    parser = build_parser()
    run = next(a for a in parser._subparsers._group_actions if a.dest == "command").choices["run"]
    commands = next(a for a in run._subparsers._group_actions).choices
    assert set(commands) == set(analyses())
    for name, analysis in analyses().items():
        help_text = commands[name].format_help()
        for p in analysis.params:
            assert (p.flag if p.kind != "bos" else "--prepend-bos") in help_text, (name, p.name)


def test_a_tabs_analyses_agree_on_each_shared_parameter():
    """One TUI control serves every analysis of a tab that reads a parameter of that name (its
    options follow the analysis chosen: the pairs' tasks, eval's every task)."""
    for tab in ("prompt", "pairs"):
        seen: dict[str, Param] = {}
        for a in analyses().values():
            if a.tab != tab:
                continue
            for p in a.params:
                first = seen.setdefault(p.name, p)
                assert first.kind == p.kind and (p.kind == "task" or first.choices == p.choices), (tab, a.name, p.name)


def test_bind_fills_defaults_and_checks_values():
    dla = analyses()["dla"]
    params = dla.bind({"prompt": "a b", "answer": " b"})
    assert params == {"prompt": "a b", "answer": " b", "distractor": None, "by": "layer", "pos": -1, "prepend_bos": None}
    assert dla.bind(params) == params  # what a session stores binds to itself
    for given, message in [({"prompt": "a", "answer": "b", "pos": "x"}, "whole number"),
                           ({"prompt": "a", "answer": "b", "by": "head "}, "must be one of"),
                           ({"prompt": "a"}, "--answer is required"),
                           ({"prompt": "a", "answer": "b", "colour": 1}, "unknown parameter")]:
        with pytest.raises(BadInput, match=message):
            dla.bind(given)


def test_adding_an_analysis_is_one_declaration(capsys, loaded):
    """A new analysis declared in a test reaches `workbench run` with its options and --json."""

    def count_tokens(lm, prompt, times):
        from analyses.inputs import prompt_input

        n = prompt_input(lm, prompt, None).ids.shape[1]
        return Table("count", ["tokens"], {"value": [float(n * times)]}, {})

    declare(Analysis("count-tokens", "count", "tokens in a prompt, times a factor",
                     (Param("prompt", "prompt", "the prompt", required=True), Param("times", "int", "factor", default=1)),
                     count_tokens, "table", "prompt"))
    try:
        code = main(["run", "count-tokens", "--model", "toy:random-gpt2", "--prompt", "Mary John", "--times", "3",
                     "--json"])
        out = json.loads(capsys.readouterr().out)
        assert code == 0 and out["rows"] == [{"label": "tokens", "value": 6.0}]
    finally:
        del REGISTRY["count-tokens"]


PAIR = ["--clean", PROMPT, "--corrupt", CORRUPT, "--answer", " Mary", "--distractor", " Alice"]


@pytest.mark.parametrize("argv, message", [
    (["eap", *PAIR, "--top", "5", "--threshold", "0.1"], "not both"),
    (["eap", *PAIR, "--ig", "0"], "--ig must be at least 1"),
    (["eap", *PAIR, "--threshold", "nan"], "finite number"),
    (["eap", *PAIR, "--prune"], "--prune prunes"),
    (["patch", *PAIR, "--site", "head_out", "--pairs", "x.jsonl"], "one source of prompts"),
    (["patch", "--site", "head_out", "--task", "ioi", "--clean", PROMPT], "one source of prompts"),
    (["patch", "--site", "head_out", "--clean", PROMPT, "--corrupt", CORRUPT], "--answer"),
    (["patch", *PAIR, "--site", "head_out", "--all-pos", "--positions", "1"], "cannot go with --all-pos"),
    (["eval"], "--task NAME or --pairs FILE"),
    (["eval", "--task", "ioi", "--n", "0"], "--n must be at least 1"),
    (["path-patch", *PAIR, "--senders", "", "--receivers", "logits"], "--senders is required"),
])
def test_nonsense_is_refused_before_the_model_loads(capsys, argv, message):
    code = main(["run", argv[0], "--model", "toy:nope", *argv[1:]])  # the model does not exist: never reached
    err = capsys.readouterr().err
    assert code == 2 and message in err, err


def test_a_negative_row_count_is_refused(capsys):
    with pytest.raises(SystemExit) as exit_:
        main(["run", "dla", "--model", "toy:ioi", "--prompt", "a", "--answer", "b", "--top", "-1"])
    assert exit_.value.code == 2 and "0 (every row) or more" in capsys.readouterr().err


def test_a_pairs_file_names_the_line_of_a_vocabulary_error(capsys, tmp_path, checkpoints):
    path = tmp_path / "pairs.jsonl"
    good = {"clean": PROMPT, "corrupt": CORRUPT, "answer": " Mary", "distractor": " Alice"}
    path.write_text(json.dumps(good) + "\n\n" + json.dumps({**good, "answer": " Zorro"}) + "\n")
    code = main(["run", "patch", "--model", str(checkpoints["gpt2"]), "--pairs", str(path), "--site", "resid_pre"])
    err = capsys.readouterr().err
    assert code == 2 and "pairs.jsonl:3:" in err and "Zorro" in err


def test_mean_ablation_of_one_pair_is_refused(capsys, checkpoints):
    code = main(["run", "patch", "--model", str(checkpoints["gpt2"]), *PAIR, "--site", "resid_pre", "--direction", "mean"])
    assert code == 2 and "at least two prompts" in capsys.readouterr().err


def test_a_task_sample_is_a_dataset_of_one_length(capsys):
    code = main(["run", "patch", "--model", "toy:ioi", "--task", "ioi", "--n", "8", "--site", "resid_pre",
                 "--direction", "resample", "--metric", "nld", "--json"])
    data = json.loads(capsys.readouterr().out)
    assert code == 0 and data["n_pairs"] == 8 and data["data"] == "task ioi" and data["partial"] is False
    code = main(["run", "patch", "--model", "toy:count01", "--task", "count01", "--site", "resid_pre"])
    assert code == 2 and "no clean/corrupted pairs" in capsys.readouterr().err


def test_a_closed_pipe_exits_quietly(checkpoints):
    """`workbench run ... | head` must not print a traceback when head stops reading."""
    exe = os.path.join(os.path.dirname(sys.executable), "workbench")
    proc = subprocess.Popen([exe, "run", "dla", "--model", str(checkpoints["gpt2"]), "--prompt", PROMPT, "--answer",
                             " Mary", "--by", "neuron", "--top", "0"], stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.close()  # the reader is gone before the first line is written
    _, err = proc.communicate(timeout=120)
    assert proc.returncode == 0 and b"Traceback" not in err and b"BrokenPipe" not in err, err


def test_an_unwritable_session_is_refused_before_loading(capsys, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    code = main(["run", "dla", "--model", "toy:nope", "--prompt", "a", "--answer", "b", "--session",
                 str(blocker / "s.wbs")])
    assert code == 2 and "no such folder" in capsys.readouterr().err


def test_stored_parameters_rerun_to_the_same_result(loaded):
    """What a session stores is every parameter, so a reopened run can be run again exactly."""
    from analyses.registry import run_analysis

    lm = loaded("gpt2")
    first = run_analysis(lm, "dla", prompt=PROMPT, answer=" Mary", by="head")
    params = analyses()["dla"].bind({"prompt": PROMPT, "answer": " Mary", "by": "head"})
    again = analyses()["dla"](lm, params)
    assert again.to_json() == first.to_json()


def test_a_parameter_name_means_one_kind_of_control_on_a_tab():
    """The form has one control per parameter name on a tab: analyses may give a name other
    choices, defaults or help (the form adopts them), but not another kind of control."""
    from analyses.registry import analyses

    control = {"choice": "select", "site": "select", "task": "select", "bos": "select", "flag": "checkbox"}
    seen: dict[tuple[str, str], tuple[str, str]] = {}
    for a in analyses().values():
        for p in a.params:
            kind = control.get(p.kind, "input")
            first = seen.setdefault((a.tab, p.name), (kind, a.name))
            assert first[0] == kind, f"{p.name} on the {a.tab} tab: {first[1]} and {a.name} need different controls"


def test_defaults_resolve_for_the_model_one_function_for_both_front_ends():
    from analyses.registry.defaults import ModelFacts, resolve_defaults

    mamba, plain = ModelFacts.of("toy:ioi-mamba"), ModelFacts("gpt2", 4, None)
    assert mamba == ModelFacts("mamba", 2, "ioi-abc")  # from the toy's recipe, before it loads
    patch = analyses()["patch"]
    assert resolve_defaults(patch, mamba)["task"] == "ioi-abc" and resolve_defaults(patch, mamba)["site"] == "out_proj"
    assert resolve_defaults(patch, plain)["task"] is None and resolve_defaults(patch, plain)["site"] == "head_out"
    typed = resolve_defaults(patch, mamba, {"clean": "a b", "corrupt": "c b"})
    assert typed["task"] is None  # a typed pair is the source: the model's task is not added to it
    assert resolve_defaults(patch, ModelFacts.of("toy:count01"))["task"] is None  # count01 has no pairs
    assert resolve_defaults(analyses()["name-arith"], mamba)["layer"] == 1  # the last layer
    assert resolve_defaults(analyses()["name-arith"], mamba, {"layer": "0"})["layer"] == "0"
    assert resolve_defaults(analyses()["inhibition-task"], ModelFacts.of("toy:count01"))["task"] == "ioi"
    assert resolve_defaults(analyses()["neuron-heads"], ModelFacts.of("toy:lookup"))["task"] == "lookup"
    assert resolve_defaults(analyses()["dla"], plain, {"prompt": ""})["prompt"] == ""  # refused as empty, not missing


def test_a_tab_opens_on_the_analysis_tabs_names_unless_one_is_made_for_the_task():
    from analyses.registry import TABS
    from analyses.registry.defaults import ModelFacts, default_analysis

    plain = ModelFacts("gpt2", 2, None)
    assert [default_analysis(t, plain) for t in TABS] == [t.default for t in TABS.values()] == \
        ["dla", "patch", "composition"]
    assert default_analysis("model", ModelFacts("gpt2", 1, "count01")) == "count-heads"
    assert default_analysis("model", ModelFacts("mamba", 2, "ioi-abc")) == "name-arith"
    fallback = default_analysis("model", ModelFacts("mamba", 2, None))  # no composition on Mamba
    assert fallback != "composition" and analyses()[fallback].available_for("mamba")
