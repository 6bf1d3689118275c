"""core.chat: messages, streaming equals non-streaming, run loading and its errors, the chat verb."""
import pytest

from core import chat
from core.__main__ import main
from core.errors import UserError
from tests.evaluation.conftest import make_run, one_thread  # noqa: F401 - autouse fixture


def test_build_messages_from_pairs_and_dicts():
    msgs = chat.build_messages("Be brief.", [("hi", "hello"), {"role": "user", "content": "and?"},
                                             {"role": "assistant", "content": "ok"}], "bye")
    assert [m["role"] for m in msgs] == ["system", "user", "assistant", "user", "assistant", "user"]
    assert msgs[-1]["content"] == "bye"
    assert chat.build_messages(None, [], "x") == [{"role": "user", "content": "x"}]


@pytest.mark.parametrize("prompt", ["Hello there, how are you?", "讲个故事", "a"])
def test_stream_concatenation_equals_plain_output(tiny, prompt):
    model, tok = tiny
    msgs = chat.build_messages("You are helpful.", [], prompt)
    plain = chat.generate(model, tok, msgs, max_new_tokens=24)
    chunks = list(chat.generate(model, tok, msgs, max_new_tokens=24, stream=True))
    assert isinstance(plain, str) and "".join(chunks) == plain
    assert all(isinstance(c, str) and c for c in chunks)


def test_side_by_side_same_decoding(tiny):
    model, tok = tiny
    msgs = chat.build_messages(None, [], "hi")
    out = chat.side_by_side((model, tok), (model, tok), msgs, max_new_tokens=8)
    assert out["base"] == out["tuned"] == chat.generate(model, tok, msgs, max_new_tokens=8)
    assert out["decoding"]["max_new_tokens"] == 8 and out["decoding"]["do_sample"] is False


def test_load_run_model_applies_adapter(tmp_path):
    run_id = make_run(tmp_path)
    tuned, tok, cfg = chat.load_run_model(run_id)
    base, _, _ = chat.load_base_model(run_id)
    msgs = chat.build_messages(cfg["system_prompt"], [], "Where is my card?")
    assert cfg["method"] == "lora"
    assert chat.generate(tuned, tok, msgs, max_new_tokens=12) != chat.generate(base, tok, msgs, max_new_tokens=12)
    merged, _, _ = chat.load_run_model(run_id, merged=True)
    assert chat.generate(merged, tok, msgs, max_new_tokens=12) == chat.generate(tuned, tok, msgs, max_new_tokens=12)


def test_run_without_adapter_is_a_user_error(tmp_path):
    run_id = make_run(tmp_path, with_adapter=False)
    with pytest.raises(UserError, match="no trained adapter"):
        chat.load_run_model(run_id)
    with pytest.raises(UserError, match="no run"):
        chat.load_run_model("does-not-exist")


def test_chat_verb_prompt_and_exit_codes(tmp_path, capsys):
    run_id = make_run(tmp_path)
    assert main(["chat", run_id, "--prompt", "hello", "--base"]) == 0
    out = capsys.readouterr().out
    assert out.endswith("\n")
    make_run(tmp_path, run_id="empty-run", with_adapter=False)
    assert main(["chat", "empty-run", "--prompt", "hello"]) == 2
    assert "no trained adapter" in capsys.readouterr().err


def test_chat_verb_interactive(tmp_path, monkeypatch, capsys):
    run_id = make_run(tmp_path)
    lines = iter(["hello", "/reset", "again", "/exit"])
    monkeypatch.setattr("builtins.input", lambda prompt="": next(lines))
    assert main(["chat", run_id]) == 0
    assert capsys.readouterr().out.count("assistant> ") == 2
