"""One grammar for head and node labels (analyses.labels), shared by erasure's writers,
composition's heads and the registry's checks before a model loads."""

from __future__ import annotations

import pytest

from analyses.errors import BadInput
from analyses.labels import Node, check_head_syntax, match_node, parse_head, parse_node


def test_heads_and_mlps_are_read_case_blind_and_written_upper_case():
    assert match_node(" l1h2 ") == Node(1, 2) and Node(1, 2).label == "L1H2"
    assert match_node("L0mlp") == Node(0) and Node(0).label == "L0MLP"
    for bad in ("", "L1", "H2", "L1H", "L1H2H3", "L-1H2", "L1.H2", "input", "L1H2.q"):
        assert match_node(bad) is None, bad


def test_each_reader_keeps_its_message():
    with pytest.raises(BadInput, match=r"'L0X' is not a node"):
        parse_node("L0X")
    assert parse_node("l2mlp") == Node(2)
    with pytest.raises(BadInput, match=r"a head is written like L1H2 \(got 'L0MLP'\)"):
        parse_head("L0MLP", 2, 4)
    with pytest.raises(BadInput, match=r"head 'L2H0' is not in this model \(2 layers x 4 heads\)"):
        parse_head("L2H0", 2, 4)
    assert parse_head("l1h3", 2, 4) == (1, 3, "L1H3")
    with pytest.raises(BadInput, match=r"--sender: a head is written like L1H2 \(got 'L0'\)"):
        check_head_syntax("L0", "--sender")
    check_head_syntax("", "--sender")
    check_head_syntax("l0h1", "--sender")


def test_the_registry_checks_labels_without_torch():
    import subprocess
    import sys

    code = ("import sys; import analyses.labels, analyses.registry.talking_heads, analyses.registry.erasure; "
            "sys.exit('torch' in sys.modules)")
    assert subprocess.run([sys.executable, "-c", code]).returncode == 0
