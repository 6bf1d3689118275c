"""The grid of data shapes of the throughput bench (bench/shapes.py): each shape is encoded as our line encodes
it, and one case trains a whole (tiny) epoch and reports what the table prints."""
from __future__ import annotations

import pytest

IGNORE = -100


@pytest.fixture(scope="module")
def tok():
    from core.models import load_model

    return load_model("smollm2-135m-instruct")[1]


def _answer_tokens(tok, ex: dict) -> str:
    return tok.decode([t for t, lab in zip(ex["input_ids"], ex["labels"]) if lab != IGNORE])


@pytest.mark.slow
@pytest.mark.parametrize("shape", ["short", "long"])
def test_chat_shapes_stay_in_range_and_learn_answers_only(shared_data, tok, shape):
    from bench.shapes import RANGES, build

    rows = build(tok, shape, 24)
    lo, hi = RANGES[shape]
    assert len(rows) == 24 and all(lo <= len(e["input_ids"]) <= hi for e in rows)
    for e in rows:
        first = e["labels"].index(next(lab for lab in e["labels"] if lab != IGNORE))
        prompt = tok.decode(e["input_ids"][:first])
        assert "customer-support assistant" in prompt and "<|im_start|>assistant" in prompt  # system + template
        assert "<|im_start|>" not in _answer_tokens(tok, e)  # no prompt token is learned


@pytest.mark.slow
def test_classify_answers_are_one_intent_after_a_long_prompt(shared_data, tok):
    from bench.shapes import build

    for e in build(tok, "classify", 12):
        answer = _answer_tokens(tok, e).replace("<|im_end|>", "").strip()
        assert answer and " " not in answer  # a single snake_case intent
        assert sum(lab == IGNORE for lab in e["labels"]) > 300 and len(e["input_ids"]) <= 512


@pytest.mark.slow
@pytest.mark.parametrize("shape,size", [("docs512", 512), ("docs1024", 1024)])
def test_documents_are_full_windows_learned_on_all_tokens(shared_data, tok, shape, size):
    from bench.shapes import build

    rows = build(tok, shape, 4)
    assert len(rows) == 4 and all(len(e["input_ids"]) == size for e in rows)
    assert rows[0]["labels"] == rows[0]["input_ids"]  # the first window learns every token
    assert all(lab != IGNORE for e in rows for lab in e["labels"][size // 2:])  # later: all but the overlap


@pytest.mark.slow
def test_chinese_shape_is_chinese_chats(tok):
    from bench.shapes import build

    rows = build(tok, "zh", 6)
    assert len(rows) == 6 and all("客服" in tok.decode(e["input_ids"]) for e in rows)
    assert all(0 < sum(lab != IGNORE for lab in e["labels"]) < len(e["labels"]) for e in rows)


@pytest.mark.slow
@pytest.mark.parametrize("impl", ["ours", "peft"])
def test_worker_trains_a_whole_epoch_and_reports(shared_data, impl):
    from bench.shapes import table, worker

    r = worker({"impl": impl, "shape": "short", "rows": 12, "model": "smollm2-135m-instruct", "threads": 1})
    assert r["rows"] == 12 and r["steps"] == 2 and len(r["losses"]) == 2  # 8 + 4 rows: the whole epoch
    assert r["rows_per_s"] > 0 and r["gflops"] > 0 and r["peak_rss_mb"] > 0 and 0 < r["final_loss"] < 20
    assert "short" in table([r], peak=100.0)
