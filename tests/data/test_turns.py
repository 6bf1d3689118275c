"""Chat turns beyond role/content: per-turn weight (0 = not learned) and tool turns through the chat template."""
from __future__ import annotations

import json

import pytest

from core.data.loader import IGNORE, SmartDataLoader
from core.data.schema import load_conversations
from core.errors import UserError
from core.models import tiny_tokenizer

from .helpers import write_jsonl

# A Qwen2.5-style template: tool definitions in the system turn, calls as <tool_call> JSON, results as a user turn.
TOOL_TEMPLATE = (
    "{%- if tools %}<|im_start|>system\n{% if messages[0]['role'] == 'system' %}{{ messages[0]['content'] }}\n"
    "{% endif %}# Tools\n<tools>{% for tool in tools %}\n{{ tool | tojson }}{% endfor %}\n</tools><|im_end|>\n"
    "{%- elif messages[0]['role'] == 'system' %}<|im_start|>system\n{{ messages[0]['content'] }}<|im_end|>\n"
    "{%- endif %}"
    "{%- for message in messages %}"
    "{%- if message.role == 'user' or (message.role == 'assistant' and not message.tool_calls) %}"
    "{{ '<|im_start|>' + message.role + '\n' + message.content + '<|im_end|>' + '\n' }}"
    "{%- elif message.role == 'assistant' %}<|im_start|>assistant\n{{ message.content }}"
    "{%- for tool_call in message.tool_calls %}\n<tool_call>\n{\"name\": \"{{ tool_call.function.name }}\", "
    "\"arguments\": {{ tool_call.function.arguments | tojson }}}\n</tool_call>{%- endfor %}<|im_end|>\n"
    "{%- elif message.role == 'tool' %}<|im_start|>user\n<tool_response>\n{{ message.content }}\n"
    "</tool_response><|im_end|>\n"
    "{%- endif %}{%- endfor %}"
    "{%- if add_generation_prompt %}<|im_start|>assistant\n{%- endif %}")

WEATHER = {"type": "function", "function": {"name": "get_weather", "description": "Weather of a city",
                                            "parameters": {"type": "object",
                                                           "properties": {"city": {"type": "string"}}}}}
TOOL_CHAT = [{"role": "user", "content": "Weather in Paris?"},
             {"role": "assistant", "content": "", "tool_calls": [
                 {"id": "c1", "type": "function",
                  "function": {"name": "get_weather", "arguments": "{\"city\": \"Paris\"}"}}]},
             {"role": "tool", "tool_call_id": "c1", "content": "{\"temp_c\": 21}"},
             {"role": "assistant", "content": "It is 21 degrees in Paris."}]


def learned(example, tok) -> list[str]:
    """Decoded runs of consecutive labelled tokens."""
    runs, cur = [], []
    for lab in example["labels"] + [IGNORE]:
        if lab != IGNORE:
            cur.append(lab)
        elif cur:
            runs.append(tok.decode(cur))
            cur = []
    return runs


def tool_tokenizer():
    tok = tiny_tokenizer()
    tok.chat_template = TOOL_TEMPLATE
    return tok


def test_weight_zero_turn_carries_no_labels(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Hi"},
                          {"role": "assistant", "content": "Bad first reply.", "weight": 0},
                          {"role": "user", "content": "Again?"},
                          {"role": "assistant", "content": "Good second reply.", "weight": 1}]},
            {"messages": [{"role": "user", "content": "Q"}, {"role": "assistant", "content": "Plain reply."}]}]
    convs, _ = load_conversations(write_jsonl(tmp_path / "w.jsonl", rows))
    assert convs[0]["messages"][1]["weight"] == 0 and "weight" not in convs[1]["messages"][1]
    tok = tiny_tokenizer()
    examples, _ = SmartDataLoader(tok, max_seq_len=1024).encode_all(convs)
    assert learned(examples[0], tok) == ["Good second reply.<|im_end|>"]  # weight 0: every token -100
    assert "Bad first reply." in tok.decode(examples[0]["input_ids"])  # still there as context
    assert learned(examples[1], tok) == ["Plain reply.<|im_end|>"]  # no weight: trained as before


def test_only_weight_zero_turns_leaves_no_example(tmp_path):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "x", "weight": 0}]}]
    convs, _ = load_conversations(write_jsonl(tmp_path / "w.jsonl", rows))
    examples, stats = SmartDataLoader(tiny_tokenizer()).encode_all(convs)
    assert examples == [] and stats["dropped_no_answer"] == 1


@pytest.mark.parametrize("bad,why", [({"role": "assistant", "content": "a", "weight": 0.5}, "must be 0"),
                                     ({"role": "user", "content": "a", "weight": 0}, "only assistant")])
def test_bad_weight_is_a_user_error(tmp_path, bad, why):
    rows = [{"messages": [{"role": "user", "content": "Hi"}, {"role": "assistant", "content": "ok"}]},
            {"messages": [bad, {"role": "assistant", "content": "ok"}]}]
    with pytest.raises(UserError, match=f"Row 2.*{why}"):
        load_conversations(write_jsonl(tmp_path / "w.jsonl", rows))


def test_tool_turns_rendered_and_the_call_learned(tmp_path):
    convs, info = load_conversations(write_jsonl(tmp_path / "t.jsonl", [{"messages": TOOL_CHAT, "tools": [WEATHER]}]))
    assert info["format"] == "messages" and convs[0]["tools"] == [WEATHER]
    call = convs[0]["messages"][1]["tool_calls"][0]
    assert call["function"]["arguments"] == {"city": "Paris"}  # JSON string parsed for the template
    tok = tool_tokenizer()
    examples, _ = SmartDataLoader(tok, max_seq_len=2048).encode_all(convs)
    text = tok.decode(examples[0]["input_ids"])
    assert '"name": "get_weather"' in text and "<tool_response>\n{\"temp_c\": 21}" in text and "# Tools" in text
    runs = learned(examples[0], tok)
    assert runs == ['\n<tool_call>\n{"name": "get_weather", "arguments": {"city": "Paris"}}\n</tool_call><|im_end|>',
                    "It is 21 degrees in Paris.<|im_end|>"]  # the call and the answer; never the tool result


def test_tool_turns_refused_by_a_template_without_tools(tmp_path):
    convs, _ = load_conversations(write_jsonl(tmp_path / "t.jsonl", [{"messages": TOOL_CHAT}]))
    tok = tiny_tokenizer()  # plain ChatML: renders no tool calls
    tok.name_or_path = "tiny-chatml"
    with pytest.raises(UserError, match="row 1 has tool turns.*tiny-chatml does not support them"):
        SmartDataLoader(tok).encode_all(convs)


def test_tool_calls_survive_prepare(tmp_path):
    from core.data.dataset import load_split, prepare_dataset

    rows = [{"messages": TOOL_CHAT, "tools": [WEATHER]}] * 1 + [
        {"messages": [{"role": "user", "content": f"q{i}"}, {"role": "assistant", "content": f"a{i}"}]}
        for i in range(9)]
    dataset_id = prepare_dataset(write_jsonl(tmp_path / "t.jsonl", rows), model=None, split=(1.0, 0.0, 0.0))
    train = load_split(dataset_id, "train")
    tool_conv = next(c for c in train if c.get("tools"))
    assert [m["role"] for m in tool_conv["messages"]] == ["user", "assistant", "tool", "assistant"]
    assert json.dumps(tool_conv["messages"][1]["tool_calls"][0]["function"]["arguments"]) == '{"city": "Paris"}'


def test_sharegpt_function_call_and_observation_become_tool_turns(tmp_path):
    rows = [{"conversations": [{"from": "human", "value": "Weather in Paris?"},
                               {"from": "function_call", "value": '{"name": "get_weather", "arguments": {"city": "Paris"}}'},
                               {"from": "observation", "value": '{"temp_c": 21}'},
                               {"from": "gpt", "value": "It is 21 degrees in Paris."}]}]
    convs, info = load_conversations(write_jsonl(tmp_path / "s.jsonl", rows))
    assert info["format"] == "sharegpt"
    msgs = convs[0]["messages"]
    assert [m["role"] for m in msgs] == ["user", "assistant", "tool", "assistant"]
    assert msgs[1]["tool_calls"][0]["function"] == {"name": "get_weather", "arguments": {"city": "Paris"}}
    tok = tool_tokenizer()
    examples, _ = SmartDataLoader(tok, max_seq_len=2048).encode_all(convs)
    assert learned(examples[0], tok)[0].startswith('\n<tool_call>\n{"name": "get_weather"')
