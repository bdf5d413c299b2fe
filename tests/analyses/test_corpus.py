"""Prompt sets streamed from a corpus file or a task: reading, batching, cutting, and the errors."""

from __future__ import annotations

import pytest

from analyses.corpus import corpus_batches, corpus_source, corpus_texts, count_texts
from analyses.errors import BadInput
from analyses.registry.corpus import check_corpus


def test_text_and_jsonl_files_give_their_documents_in_order(tmp_path):
    txt = tmp_path / "c.txt"
    txt.write_text("one two\n\n three\n")
    assert list(corpus_texts(str(txt))) == ["one two", " three"]
    assert count_texts(str(txt)) == 2
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"text": "a b"}\n{"prompt": "c"}\n')
    assert list(corpus_texts(str(jl))) == ["a b", "c"]
    assert list(corpus_texts(str(jl), n=1)) == ["a b"]
    assert count_texts(str(jl), n=1) == 1


def test_a_bad_line_is_named(tmp_path):
    jl = tmp_path / "c.jsonl"
    jl.write_text('{"text": "a"}\n{"text": 3}\n')
    with pytest.raises(BadInput, match=r"c.jsonl:2:"):
        list(corpus_texts(str(jl)))
    jl.write_text('{"text": "a"}\nnot json\n')
    with pytest.raises(BadInput, match=r"c.jsonl:2: not JSON"):
        list(corpus_texts(str(jl)))
    raw = tmp_path / "c.txt"
    raw.write_bytes(b"ok\n\xff\xfe\n")
    with pytest.raises(BadInput, match="not UTF-8"):
        list(corpus_texts(str(raw)))


def test_exactly_one_source_is_checked_before_loading(tmp_path):
    with pytest.raises(BadInput, match="not both"):
        check_corpus({"corpus": "x", "task": "ioi"})
    with pytest.raises(BadInput, match="--corpus FILE"):
        check_corpus({})
    with pytest.raises(BadInput, match="no such file"):
        corpus_source(str(tmp_path / "missing.txt"), None)
    assert corpus_source(None, "ioi") == "task"


def test_task_texts_end_with_their_answer():
    texts = list(corpus_texts(task="ioi", n=5))
    assert len(texts) == 5 and all(t.endswith((" Mary", " John")) or t.split()[-1].istitle() for t in texts)


def test_batches_are_right_padded_cut_to_the_context_and_cover_every_document(loaded):
    lm = loaded("gpt2")
    texts = ["When Mary and John went to the store", "Mary", "When Mary and John went to the store , John gave"]
    batches = list(corpus_batches(lm.tokenizer, texts, batch_size=2, n_ctx=8))
    assert [b.start for b in batches] == [0, 2] and [len(b.texts) for b in batches] == [2, 1]
    first = batches[0]
    assert first.lengths[0] == 8 and first.ids.shape == (2, 8)  # cut to the context
    own = lm.tokenizer(texts[1])["input_ids"]
    assert first.ids[1, : first.lengths[1]].tolist() == own
    assert batches[1].ids.shape[1] == 8


def test_a_session_reads_a_prompt_set_once_and_again_when_the_file_changes(loaded, tmp_path, monkeypatch):
    """The second loop over the same file (or task sample) tokenises nothing: its documents come
    from the session's cache; a file rewritten since is read again, and a file larger than
    CACHE_BYTES is streamed, never kept."""
    import os

    import analyses.corpus as corpus
    from analyses.corpus import CorpusLoop, PromptSet

    lm = loaded("gpt2")
    path = tmp_path / "c.txt"
    path.write_text("When Mary and John went to the store\nJohn gave a drink to Mary\n")
    reads = []
    real = corpus.corpus_texts
    monkeypatch.setattr(corpus, "corpus_texts", lambda *a, **k: (reads.append(a), real(*a, **k))[1])

    def texts(prompts):
        loop = CorpusLoop.over(lm.hooked, lm.tokenizer, prompts)
        return [t for b in loop for t in b.texts], loop

    prompts = PromptSet(corpus=str(path), batch=1)
    first, loop = texts(prompts)
    again, _ = texts(prompts)
    assert first == again == ["When Mary and John went to the store", "John gave a drink to Mary"]
    assert len(reads) == 1 and loop.texts == 2 and loop.read == 2 and not loop.partial
    path.write_text("Mary\n")
    os.utime(path, ns=(1, 1))  # a new mtime even on a coarse clock
    assert texts(prompts)[0] == ["Mary"] and len(reads) == 2
    for _ in range(2):
        texts(PromptSet(task="ioi", n=3))
    assert len(reads) == 3
    monkeypatch.setattr(corpus, "CACHE_BYTES", 1)
    for _ in range(2):
        texts(prompts)
    assert len(reads) == 5


def test_the_loop_stops_when_asked_and_says_so(loaded):
    from analyses.corpus import CorpusLoop, PromptSet

    lm = loaded("gpt2")
    calls = []
    loop = CorpusLoop.over(lm.hooked, lm.tokenizer, PromptSet(task="ioi", n=6, batch=2),
                           progress=lambda d, t: calls.append((d, t)), should_stop=lambda: len(calls) >= 2)
    assert sum(len(b.texts) for b in loop) == 4 and loop.partial and calls == [(2, 6), (4, 6)]
