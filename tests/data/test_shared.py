"""Every real dataset in ../shared/data is read with the right format, or refused with a useful suggestion."""
from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from core.__main__ import main
from core.data import load_conversations
from core.errors import UserError

BITEXT = "bitext_customer_support/{}/Bitext_Sample_Customer_Support_Training_Dataset.csv"
# path -> (format, conversations, labels)
READABLE = {
    "banking77/train.csv": ("classification", 10003, 77),
    "banking77/test.csv": ("classification", 3080, 77),
    BITEXT.format("v1_short_responses"): ("qa", 6480, 27),
    BITEXT.format("v2_long_responses"): ("qa", 4514, 27),
    "clinc150/data_full.json": ("classification", 23700, 151),
    "cucom_sample/sample.jsonl": ("messages", 51, 0),
    "fastchat_sharegpt/dummy_conversation.json": ("sharegpt", 500, 0),
    "self_instruct/seed_tasks.jsonl": ("alpaca", 175, 0),
    "self_instruct/user_oriented_instructions.jsonl": ("alpaca", 252, 0),
}


@pytest.mark.parametrize("rel", sorted(READABLE))
def test_shared_dataset_format(shared_data, rel):
    fmt, rows, labels = READABLE[rel]
    convs, info = load_conversations(shared_data / rel)
    assert (info["format"], info["rows"], info["num_labels"]) == (fmt, rows, labels)
    assert all(any(m["role"] == "assistant" for m in c["messages"]) for c in convs)


def test_clinc_keeps_source_split(shared_data):
    convs, info = load_conversations(shared_data / "clinc150/data_full.json")
    splits = {c["meta"]["split"] for c in convs}
    assert splits == {"train", "val", "test", "oos_train", "oos_val", "oos_test"}
    assert sum(c["meta"]["split"] in ("train", "val", "test") for c in convs) == 22500
    assert "JSON of splits" in info["notes"][0]["text"]


def test_cucom_multi_turn(shared_data):
    convs, info = load_conversations(shared_data / "cucom_sample/sample.jsonl")
    assert info["mapping"] == {"messages": "turns"}
    assert sum(m["role"] == "assistant" for c in convs for m in c["messages"]) == 372


@pytest.mark.parametrize("rel,needle", [
    ("fastchat_sharegpt/mt_bench_question.jsonl", "Column 'turns' holds lists of plain strings"),
    ("fastchat_sharegpt/mt_bench_reference_answer_gpt-4.jsonl", "Column 'choices' holds lists of objects"),
])
def test_shared_eval_sets_explained(shared_data, rel, needle):
    with pytest.raises(UserError) as exc:
        load_conversations(shared_data / rel)
    assert needle in str(exc.value) and "Columns found:" in str(exc.value)


def test_banking77_mapping_to_qa(shared_data):
    convs, info = load_conversations(shared_data / "banking77/train.csv",
                                     mapping={"question": "text", "answer": "category"})
    assert info["format"] == "qa" and convs[0]["messages"][1]["content"] == "card_arrival"


def _analyze_json(capsys, args):
    assert main(["analyze", *args, "--json"]) == 0
    return json.loads(capsys.readouterr().out)


def test_cli_analyze_banking77_fast(shared_data, capsys):
    out = _analyze_json(capsys, [str(shared_data / "banking77/train.csv"), "--model", "tiny-llama"])
    assert (out["rows"], out["labels"], out["format"]) == (10003, 77, "classification")
    assert out["checks"]["labels"]["num_labels"] == 77 and 0 <= out["score"] <= 100


@pytest.mark.slow
def test_cli_analyze_banking77_default_tokenizer(shared_data, capsys, monkeypatch):
    root = Path(__file__).resolve().parents[2]
    monkeypatch.chdir(root)  # the command exactly as documented, relative to the repository root
    out = _analyze_json(capsys, [os.path.relpath(shared_data / "banking77/train.csv", root)])
    assert (out["rows"], out["labels"], out["format"]) == (10003, 77, "classification")
    assert "smollm2" in out["tokenizer"].lower()
