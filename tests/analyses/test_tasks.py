"""Task generators: deterministic, every variant, equal-length pairs, a real held-out split."""

from __future__ import annotations

import collections
import json

import pytest

from analyses.errors import BadInput
from analyses.tasks import count01, in_split, ioi, task_examples, vocabulary
from analyses.tasks.pair_files import read_pairs, write_pairs
from analyses.toys.checkpoints import fast_tokenizer

TASKS = ["ioi", "ioi-abc", "count01", "recall"]


@pytest.fixture(scope="module")
def tok():
    return fast_tokenizer(vocabulary())


@pytest.mark.parametrize("task", TASKS)
def test_deterministic_under_a_seed(task):
    assert task_examples(task, 50, seed=3) == task_examples(task, 50, seed=3)
    assert task_examples(task, 50, seed=3) != task_examples(task, 50, seed=4)


@pytest.mark.parametrize("task", TASKS)
def test_every_word_is_in_the_toy_vocabulary(task, tok):
    for e in task_examples(task, 200, seed=1):
        for text in (e.prompt, e.answer, e.distractor):
            assert tok.unk_token_id not in tok(text)["input_ids"], text
        assert len(tok(e.answer, add_special_tokens=False)["input_ids"]) == 1


@pytest.mark.parametrize("task, variants", [
    ("ioi", set(ioi.TWO_NAME_VARIANTS)),
    ("ioi-abc", set(ioi.THREE_NAME_VARIANTS)),
    ("count01", {f"len{n}" for n in range(count01.MIN_LEN, count01.MAX_LEN + 1)}),
    ("recall", {f"len{n}" for n in range(2, 11)}),
])
def test_every_variant_is_sampled_evenly(task, variants):
    counts = collections.Counter(e.variant for e in task_examples(task, 1300, seed=2, split="all"))
    assert set(counts) == variants
    assert max(counts.values()) - min(counts.values()) <= 2


def test_ioi_answers_are_the_name_said_once():
    for e in task_examples("ioi", 100) + task_examples("ioi-abc", 100):
        words = e.prompt.replace(",", " ").replace(".", " ").split()
        assert words.count(e.answer.strip()) == 1 and words.count(e.distractor.strip()) == 2
    abba = [e for e in task_examples("ioi", 40) if e.variant == "ABBA"]
    assert all(e.prompt.split()[1] == e.answer.strip() for e in abba)  # the answer is the first name


def test_count01_labels_ties_and_noise():
    ex = task_examples("count01", 2000, seed=5, split="all")
    for e in ex:
        s = e.prompt.split()[:-1]
        assert (e.answer == " yes") == (s.count("1") > s.count("0")) and e.target == "[EOS]"
    assert abs(sum(e.answer == " yes" for e in ex) - 1000) < 60
    assert sum(e.prompt.split().count("1") == e.prompt.split().count("0") for e in ex) > 100  # ties
    assert sum("2" in e.prompt.split() for e in ex) > 1000  # noise


@pytest.mark.parametrize("kind", ["two", "three"])
def test_pairs_have_equal_length_and_their_own_answers(kind, tok):
    for p in ioi.pairs(60, seed=1, kind=kind):
        assert len(tok(p.clean)["input_ids"]) == len(tok(p.corrupt)["input_ids"])
        assert p.clean != p.corrupt and p.answer != p.distractor
        corrupt_words = p.corrupt.replace(",", " ").replace(".", " ").split()
        assert corrupt_words.count(p.distractor.strip()) == 1  # the corrupted prompt's own answer
    assert ioi.pairs(10, seed=1, kind=kind) == ioi.pairs(10, seed=1, kind=kind)


def test_test_split_is_never_trained_on():
    train = {e.prompt for e in task_examples("count01", 3000, seed=0, split="train")}
    test = {e.prompt for e in task_examples("count01", 300, seed=0, split="test")}
    assert not train & test and all(in_split(p, "test") for p in test)


def test_pair_files_round_trip_and_name_the_bad_line(tmp_path):
    path = tmp_path / "pairs.jsonl"
    pairs = ioi.pairs(3)
    write_pairs(path, pairs)
    assert read_pairs(path) == pairs
    lines = path.read_text().splitlines()
    path.write_text("\n".join([lines[0], "{not json", lines[2]]))
    with pytest.raises(BadInput, match=r"pairs.jsonl:2: not valid JSON"):
        read_pairs(path)
    path.write_text(lines[0] + "\n" + json.dumps({"clean": "a", "corrupt": "b", "answer": "c"}))
    with pytest.raises(BadInput, match=r":2: missing or empty string field\(s\): distractor"):
        read_pairs(path)
    with pytest.raises(BadInput, match="cannot read"):
        read_pairs(tmp_path / "absent.jsonl")


def test_a_pair_file_that_is_not_utf8_is_bad_input_naming_it(tmp_path):
    path = tmp_path / "latin1.jsonl"
    line = json.dumps({"clean": "Zoë gave", "corrupt": "Ana gave", "answer": "x", "distractor": "y"}, ensure_ascii=False)
    path.write_bytes(line.encode("latin-1"))
    with pytest.raises(BadInput, match=r"latin1.jsonl: the pair file is not UTF-8 text"):
        read_pairs(path)
    path.write_bytes(b"\xef\xbb\xbf" + line.encode("utf-8"))  # a UTF-8 file with a BOM, as some editors save
    assert read_pairs(path)[0].clean == "Zoë gave"
    with pytest.raises(BadInput, match="cannot read"):
        read_pairs(tmp_path)  # a folder
