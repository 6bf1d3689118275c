"""Format detection and normalisation to conversations, explicit mappings, and the 'nothing fits' message."""
from __future__ import annotations

import json

import pytest

from core.data import load_conversations
from core.errors import UserError

from .helpers import write_jsonl


def _load(tmp_path, rows, **kw):
    return load_conversations(write_jsonl(tmp_path / "d.jsonl", rows), **kw)


def _roles(conv):
    return [(m["role"], m["content"]) for m in conv["messages"]]


def test_alpaca_with_input_and_system(tmp_path):
    convs, info = _load(tmp_path, [{"instruction": "Translate", "input": "bonjour", "output": "hello",
                                    "system": "Be brief."},
                                   {"instruction": "Say hi", "input": "", "output": "hi"}])
    assert info["format"] == "alpaca"
    assert _roles(convs[0]) == [("system", "Be brief."), ("user", "Translate\n\nbonjour"), ("assistant", "hello")]
    assert _roles(convs[1]) == [("user", "Say hi"), ("assistant", "hi")]
    assert convs[1]["meta"]["row"] == 2


def test_alpaca_history(tmp_path):
    convs, _ = _load(tmp_path, [{"instruction": "And 3?", "output": "Three", "history": [["1?", "One"]]}])
    assert _roles(convs[0]) == [("user", "1?"), ("assistant", "One"), ("user", "And 3?"), ("assistant", "Three")]


@pytest.mark.parametrize("q,a", [("question", "answer"), ("query", "response"), ("instruction", "response"),
                                 ("Question", "Answer")])
def test_qa_synonyms(tmp_path, q, a):
    convs, info = _load(tmp_path, [{q: "Why?", a: "Because.", "intent": "why"}])
    assert info["format"] == "qa" and info["mapping"] == {"question": q, "answer": a}
    assert _roles(convs[0]) == [("user", "Why?"), ("assistant", "Because.")]
    assert convs[0]["meta"]["label"] == "why"


def test_prompt_completion(tmp_path):
    convs, info = _load(tmp_path, [{"prompt": "2+2=", "completion": "4"}])
    assert info["format"] == "prompt_completion" and _roles(convs[0]) == [("user", "2+2="), ("assistant", "4")]


def test_openai_messages_with_content_parts(tmp_path):
    msgs = [{"role": "system", "content": "S"}, {"role": "user", "content": [{"type": "text", "text": "Hi"}]},
            {"role": "assistant", "content": "Hello"}]
    convs, info = _load(tmp_path, [{"messages": msgs, "id": "c1"}])
    assert info["format"] == "messages"
    assert _roles(convs[0]) == [("system", "S"), ("user", "Hi"), ("assistant", "Hello")]
    assert convs[0]["meta"]["id"] == "c1"


def test_sharegpt_roles(tmp_path):
    turns = [{"from": "system", "value": "S"}, {"from": "human", "value": "Hi"}, {"from": "gpt", "value": "Yo"}]
    p = tmp_path / "d.json"
    p.write_text(json.dumps([{"conversations": turns}]))
    convs, info = load_conversations(p)
    assert info["format"] == "sharegpt"
    assert _roles(convs[0]) == [("system", "S"), ("user", "Hi"), ("assistant", "Yo")]


def test_classification(tmp_path):
    p = tmp_path / "d.csv"
    p.write_text("text,label\nmy card is lost,lost_card\nwhere is my money,transfer\n")
    convs, info = load_conversations(p)
    assert info["format"] == "classification" and info["num_labels"] == 2
    assert _roles(convs[0]) == [("user", "my card is lost"), ("assistant", "lost_card")]
    assert convs[0]["meta"]["label"] == "lost_card"


def test_plain_text(tmp_path):
    p = tmp_path / "d.txt"
    p.write_text("Doc one.\n\nDoc two.\n")
    convs, info = load_conversations(p)
    assert info["format"] == "text"
    assert [_roles(c) for c in convs] == [[("assistant", "Doc one.")], [("assistant", "Doc two.")]]


def test_text_column_beside_ids_is_plain_text(tmp_path):
    convs, info = _load(tmp_path, [{"id": "a1", "text": "A whole document here."},
                                   {"id": "a2", "text": "Another document, longer."}])
    assert info["format"] == "text" and convs[1]["meta"]["id"] == "a2"
    with pytest.raises(UserError, match="--map question=body --map answer=text"):
        _load(tmp_path, [{"text": "A whole long document here.", "body": "Some other prose here."}])


def test_turns_column_and_self_instruct_instances(tmp_path):
    convs, info = _load(tmp_path, [{"id": "x", "turns": [{"role": "user", "content": "a"},
                                                          {"role": "assistant", "content": "b"}]}])
    assert info["format"] == "messages" and info["mapping"] == {"messages": "turns"}
    assert any("turns" in n["text"] for n in info["notes"])
    convs, info = _load(tmp_path, [{"instruction": "Add", "instances": [{"input": "1 1", "output": "2"},
                                                                         {"input": "", "output": "0"}]}])
    assert info["format"] == "alpaca" and len(convs) == 2
    assert _roles(convs[0]) == [("user", "Add\n\n1 1"), ("assistant", "2")]
    assert convs[1]["meta"]["row"] == 1


def test_explicit_mapping_and_forced_format(tmp_path):
    rows = [{"utt": "hi there", "intent": "greet"}, {"utt": "bye now", "intent": "leave"}]
    convs, info = _load(tmp_path, rows, mapping={"question": "utt", "answer": "intent"})
    assert info["format"] == "qa" and _roles(convs[0]) == [("user", "hi there"), ("assistant", "greet")]
    convs, info = _load(tmp_path, rows, mapping={"text": "utt", "label": "intent"})
    assert info["format"] == "classification" and convs[1]["meta"]["label"] == "leave"
    convs, info = _load(tmp_path, [{"text": "a b", "label": "x"}], format="qa",
                        mapping={"question": "text", "answer": "label"})
    assert info["format"] == "qa"
    convs, info = _load(tmp_path, [{"text": "hello there", "intent": "greet"}], mapping={"label": "intent"})
    assert info["format"] == "classification" and info["mapping"] == {"label": "intent", "text": "text"}
    with pytest.raises(UserError, match="could not be found"):
        _load(tmp_path, rows, mapping={"answer": "intent"})
    with pytest.raises(UserError, match="needs columns for question \\+ answer"):
        _load(tmp_path, rows, format="qa")
    with pytest.raises(UserError, match="does not have.*Columns found: utt, intent"):
        _load(tmp_path, rows, mapping={"question": "nope", "answer": "intent"})
    with pytest.raises(UserError, match="Unknown format"):
        _load(tmp_path, rows, format="chatml")


def test_nothing_fits_lists_columns_and_suggests_mapping(tmp_path):
    rows = [{"utterance_text": f"please do thing number {i} for me", "tag": ["a", "b"][i % 2], "n": i}
            for i in range(10)]
    with pytest.raises(UserError) as exc:
        _load(tmp_path, rows)
    msg = str(exc.value)
    assert "Columns found: utterance_text, tag, n" in msg
    assert "question+answer" in msg and "text+label" in msg
    assert "--map text=utterance_text --map label=tag" in msg
    # the suggestion works when applied
    convs, info = _load(tmp_path, rows, mapping={"text": "utterance_text", "label": "tag"})
    assert info["format"] == "classification" and len(convs) == 10


def test_unknown_role_refused(tmp_path):
    with pytest.raises(UserError, match="Row 1: unknown chat role 'wizard'"):
        _load(tmp_path, [{"messages": [{"role": "wizard", "content": "x"}]}])
