"""AdvancedDataProcessor: each step does its job, leaves its input untouched and reports before/after counts."""
from __future__ import annotations

import copy
from collections import Counter

import pytest

from core.data import AdvancedDataProcessor
from core.data.processing import parse_split
from core.errors import UserError
from core.models import tiny_tokenizer

from .helpers import cls_rows, convs_of, qa_rows


def cls_convs(rows):
    return [{"messages": [{"role": "user", "content": r["text"]}, {"role": "assistant", "content": r["label"]}],
             "meta": {"row": i + 1, "label": r["label"]}} for i, r in enumerate(rows)]


def test_clean_strips_html_controls_and_spacing():
    convs = convs_of([{"question": "  Hi\x07 <b>there</b>&amp;  you\r\n\r\n\r\nok ", "answer": "<p>Fine &lt;3</p>"},
                      {"question": "plain", "answer": "<br/>"}])
    before = copy.deepcopy(convs)
    proc = AdvancedDataProcessor()
    out = proc.clean(convs)
    assert convs == before  # input untouched
    assert out[0]["messages"][0]["content"] == "Hi there & you\n\nok"
    assert out[0]["messages"][1]["content"] == "Fine <3"
    assert len(out) == 1  # the second row had only markup as its answer
    assert proc.operations == [{"op": "clean", "before": 2, "after": 1, "removed": 1, "changed": 2}]


def test_drop_empty():
    convs = convs_of(qa_rows(5))
    convs[1]["messages"][1]["content"] = ""
    convs[2]["messages"][0]["content"] = " "
    convs[3]["messages"].insert(1, {"role": "user", "content": ""})
    proc = AdvancedDataProcessor()
    out = proc.drop_empty(convs)
    assert [c["meta"]["row"] for c in out] == [1, 4, 5]
    assert len(out[1]["messages"]) == 2  # the empty extra turn went, the row stayed
    assert proc.operations[0]["removed"] == 2


def test_dedupe_exact_and_near():
    rows = qa_rows(40)
    rows[10] = {"question": rows[2]["question"].lower(), "answer": rows[2]["answer"] + "  "}
    words = rows[5]["answer"].split()
    rows[20] = {"question": rows[5]["question"], "answer": " ".join(words[:-1] + ["kalons."])}
    proc = AdvancedDataProcessor()
    out = proc.dedupe(convs_of(rows))
    kept = [c["meta"]["row"] for c in out]
    assert 11 not in kept and 21 not in kept and {3, 6} <= set(kept) and len(kept) == 38
    assert proc.operations[0] == {"op": "dedupe", "before": 40, "after": 38, "removed": 2, "exact": 1, "near": 1}
    assert len(AdvancedDataProcessor().dedupe(convs_of(rows), near=False)) == 39


def test_filter_length():
    rows = qa_rows(10)
    rows[3]["answer"] = "x " * 400
    rows[4] = {"question": "q", "answer": "y"}
    proc = AdvancedDataProcessor()
    out = proc.filter_length(convs_of(rows), min_tokens=40, max_tokens=300, tokenizer=tiny_tokenizer())
    assert [c["meta"]["row"] for c in out] == [1, 2, 3, 6, 7, 8, 9, 10]
    assert proc.operations[0]["removed"] == 2


def test_mask_pii():
    convs = convs_of([{"question": "I am a@b.com, call 13800138000", "answer": "Card 4111-1111-1111-1111 noted."},
                      {"question": "nothing here", "answer": "ok"}])
    proc = AdvancedDataProcessor()
    out = proc.mask_pii(convs)
    assert out[0]["messages"][0]["content"] == "I am [EMAIL], call [PHONE]"
    assert out[0]["messages"][1]["content"] == "Card [CARD] noted."
    assert convs[0]["messages"][0]["content"].startswith("I am a@b.com")
    assert proc.operations[0] == {"op": "mask_pii", "before": 2, "after": 2, "removed": 0, "changed": 1,
                                  "replacements": 3}


def test_split_stratified_and_seeded():
    convs = cls_convs(cls_rows(200, labels=4))
    parts = AdvancedDataProcessor(seed=7).split(convs, (0.8, 0.1, 0.1))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [160, 20, 20]
    for name in ("val", "test"):
        assert Counter(c["meta"]["label"] for c in parts[name]) == {f"label_{i}": 5 for i in range(4)}
    rows = lambda p: {s: [c["meta"]["row"] for c in p[s]] for s in p}  # noqa: E731
    all_rows = sorted(r for v in rows(parts).values() for r in v)
    assert all_rows == list(range(1, 201))
    assert rows(AdvancedDataProcessor(seed=7).split(convs)) == rows(parts)
    assert rows(AdvancedDataProcessor(seed=8).split(convs)) != rows(parts)


def test_split_unlabelled_and_tiny_groups():
    parts = AdvancedDataProcessor().split(convs_of(qa_rows(10)), "0.6,0.2,0.2")
    assert [len(parts[s]) for s in ("train", "val", "test")] == [6, 2, 2]
    one = AdvancedDataProcessor().split(cls_convs([{"text": "a b c", "label": "x"}]))
    assert len(one["train"]) == 1


@pytest.mark.parametrize("value,needle", [("0.8,0.1", "instead of 3"), ("0.8,0.3,0.1", "sum to 1.2"),
                                          ("a,b,c", "not three numbers"), ("0,0.5,0.5", "train fraction"),
                                          ("1.2,-0.1,-0.1", "negative")])
def test_parse_split_errors(value, needle):
    with pytest.raises(UserError, match=needle):
        parse_split(value)


def test_run_pipeline_reports_every_step():
    rows = qa_rows(50)
    rows[1] = dict(rows[0])
    rows[2]["answer"] = ""
    rows[3]["answer"] = "<i>mail</i> me@x.org"
    proc = AdvancedDataProcessor(seed=1)
    parts = proc.run(convs_of(rows), clean=True, dedupe=True, mask_pii=True)
    assert [op["op"] for op in proc.operations] == ["clean", "drop_empty", "mask_pii", "dedupe", "split"]
    assert sum(len(v) for v in parts.values()) == 48
    for a, b in zip(proc.operations, proc.operations[1:]):
        assert a["after"] == b["before"]
    texts = [c["messages"][1]["content"] for v in parts.values() for c in v]
    assert "mail [EMAIL]" in texts
    with pytest.raises(UserError, match="No usable rows"):
        AdvancedDataProcessor().run(convs_of([{"question": "q", "answer": ""}]))


def test_split_source_keeps_the_files_splits():
    convs = cls_convs(cls_rows(12))
    names = ["train", "oos_train", "val", "test", "oos_test", "dev"] * 2
    for c, name in zip(convs, names):
        c["meta"]["split"] = name
    parts = AdvancedDataProcessor().split(convs, "source")
    assert {k: len(v) for k, v in parts.items()} == {"train": 4, "val": 4, "test": 4}
    assert {c["meta"]["split"] for c in parts["val"]} == {"val", "dev"}
    convs[0]["meta"]["split"] = "extra"
    with pytest.raises(UserError, match="found extra"):
        AdvancedDataProcessor().split(convs, "source")
    with pytest.raises(UserError, match="found \\(none\\)"):
        AdvancedDataProcessor().split(cls_convs(cls_rows(4)), "source")


def test_stratified_split_totals_match_the_requested_percentages():
    # 64 labels of 15 rows: rounding each label's 1.5 validation rows up gave 704/128/128 instead of 768/96/96
    convs = cls_convs(cls_rows(960, labels=64))
    proc = AdvancedDataProcessor(seed=3)
    parts = proc.split(convs, (0.8, 0.1, 0.1))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [768, 96, 96]
    for name in ("val", "test"):
        assert set(Counter(c["meta"]["label"] for c in parts[name]).values()) <= {1, 2}
    op = proc.operations[-1]
    assert op["requested"] == {"train": 768, "val": 96, "test": 96} and op["reason"] == "stratified"


def test_split_reason_says_when_small_labels_keep_their_rows_for_training():
    proc = AdvancedDataProcessor()
    parts = proc.split(cls_convs([{"text": f"t{i}", "label": f"l{i}"} for i in range(10)]), (0.8, 0.1, 0.1))
    assert [len(parts[s]) for s in ("train", "val", "test")] == [10, 0, 0]
    assert proc.operations[-1]["requested"] == {"train": 8, "val": 1, "test": 1}
    assert proc.operations[-1]["reason"] == "min_train"
    proc = AdvancedDataProcessor()
    proc.split(convs_of(qa_rows(10)), "0.6,0.2,0.2")
    assert proc.operations[-1]["reason"] == "exact"
