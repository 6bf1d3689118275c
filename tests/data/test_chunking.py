"""Documents for continued pretraining: overlapping windows, no token lost, each token learned once, packing."""
from __future__ import annotations

import json

import pytest

from core.data.chunking import (
    IGNORE,
    chunk_document,
    chunk_spans,
    count_chunks,
    document_examples,
    effective_overlap,
)
from core.data.loader import SmartDataLoader
from core.defaults import DOC_CHUNK_OVERLAP
from core.models import tiny_tokenizer
from core.workspace import dataset_dir


@pytest.mark.parametrize("n,size,overlap", [(1000, 256, 32), (257, 256, 32), (256, 256, 32), (5, 256, 32),
                                            (999, 64, 0), (100, 10, 50)])
def test_chunks_minus_overlaps_give_back_every_token(n, size, overlap):
    ids = list(range(n))
    chunks = chunk_document(ids, size, overlap)
    used = effective_overlap(size, overlap)
    rebuilt = chunks[0]["input_ids"] + [t for c in chunks[1:] for t in c["input_ids"][used:]]
    assert rebuilt == ids  # nothing lost, nothing doubled
    assert all(len(c["input_ids"]) <= size for c in chunks) and len(chunks) == count_chunks(n, size, overlap)
    for prev, nxt in zip(chunks, chunks[1:]):  # the stated overlap, exactly
        assert prev["input_ids"][-used:] == nxt["input_ids"][:used] if used else True
    learned = [lab for c in chunks for lab in c["labels"] if lab != IGNORE]
    assert learned == ids  # every token learned once, in order


def test_overlap_is_at_most_half_a_window():
    assert effective_overlap(256) == DOC_CHUNK_OVERLAP and effective_overlap(16, 32) == 8
    assert chunk_spans(40, 16, 32) == [(0, 16), (8, 24), (16, 32), (24, 40)]


def test_short_documents_are_packed_long_ones_not():
    short = [[1, 2, 3, 0]] * 10
    examples, stats = document_examples(short, 16, 4)
    assert stats["documents_packed"] and stats["chunks"] == len(examples) < 10
    long_docs = [list(range(30)), list(range(40))]
    _, stats = document_examples(long_docs, 16, 4)
    assert not stats["documents_packed"] and stats["chunks"] == count_chunks(30, 16, 4) + count_chunks(40, 16, 4)


def test_loader_chunks_a_long_document_instead_of_truncating():
    tok = tiny_tokenizer()
    text = "".join(f"Sentence number {i} of a long manual. " for i in range(200))  # ~7,000 byte tokens
    conv = {"messages": [{"role": "assistant", "content": text}], "meta": {"row": 1}}
    loader = SmartDataLoader(tok, max_seq_len=256)
    examples, stats = loader.encode_all([conv])
    whole = tok(text, add_special_tokens=False)["input_ids"] + [tok.eos_token_id]
    assert stats["documents"] == 1 and stats["chunks"] == len(examples) == count_chunks(len(whole), 256)
    assert stats["truncated"] == 0 and stats["tokens"] >= len(whole)
    overlap = stats["chunk_overlap"]
    rebuilt = examples[0]["input_ids"] + [t for e in examples[1:] for t in e["input_ids"][overlap:]]
    assert rebuilt == whole
    assert sum(lab != IGNORE for e in examples for lab in e["labels"]) == len(whole) == stats["label_tokens"]


def test_documents_and_chats_mix():
    tok = tiny_tokenizer()
    chat = {"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "Hello."}],
            "meta": {"row": 1}}
    doc = {"messages": [{"role": "assistant", "content": "word " * 100}], "meta": {"row": 2}}
    examples, stats = SmartDataLoader(tok, max_seq_len=128).encode_all([chat, doc])
    assert stats["documents"] == 1 and len(examples) == 1 + stats["chunks"] and stats["chunks"] == count_chunks(501, 128)


def test_long_text_field_dataset_analysis_matches_the_loader(tmp_path):
    """Analyze reports the token count and the number of windows the trainer's loader will make."""
    from core.data.dataset import load_split, prepare_dataset
    from core.data.kinds import load_rows
    from core.data.quality import DataQualityAnalyzer

    from .helpers import write_jsonl

    tok = tiny_tokenizer()
    rows = [{"text": "".join(f"Chapter {d}, sentence {i}. " for i in range(60 + 40 * d))} for d in range(5)]
    path = write_jsonl(tmp_path / "manual.jsonl", rows)
    convs, info = load_rows(path)
    assert (info["kind"], info["format"]) == ("document", "text")
    report = DataQualityAnalyzer(tokenizer=tok, max_seq_len=256).analyze(convs, info)
    docs = report["checks"]["documents"]
    _, stats = SmartDataLoader(tok, max_seq_len=256).encode_all(convs)
    assert (docs["documents"], docs["doc_tokens"], docs["chunks"]) == (5, stats["doc_tokens"], stats["chunks"])
    assert not any(d["code"] == "too_long" for d in report["deductions"])  # chunked, not truncated
    dataset_id = prepare_dataset(path, model=None, split=(0.6, 0.2, 0.2))
    meta = json.loads((dataset_dir(dataset_id) / "meta.json").read_text(encoding="utf-8"))
    assert meta["kind"] == "document" and meta["documents"]["documents"] == 5
    assert len(load_split(dataset_id, "train")) == 3


def test_markdown_upload_is_a_document(tmp_path):
    from core.data.kinds import load_rows
    from core.data.uploads import save_upload

    path = save_upload("guide.md", b"# Guide\n\nFirst part of the guide.\n\nSecond part.\n")
    convs, info = load_rows(path)
    assert info["kind"] == "document" and len(convs) == 3


def test_long_text_field_beside_a_title_is_a_document(tmp_path):
    from core.data.kinds import load_rows

    from .helpers import write_jsonl

    rows = [{"title": f"Chapter {d} of the guide", "text": "".join(f"Step {i} of chapter {d}. " for i in range(200))}
            for d in range(3)]
    convs, info = load_rows(write_jsonl(tmp_path / "wiki.jsonl", rows))
    assert (info["kind"], info["mapping"]) == ("document", {"text": "text"})
    assert convs[0]["meta"]["fields"] == {"title": "Chapter 0 of the guide"}
