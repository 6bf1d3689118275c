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


@pytest.mark.parametrize("kind", ["tiny-llama", "tiny-gpt2"])
def test_greedy_chat_answer_is_hf_generates(kind):
    import torch

    from core.chat_template import end_token_ids, prompt_ids
    from tests.decoding.helpers import build

    model, tok = build(kind, "lora")  # weights large enough that answers differ by prompt (not just newlines)
    msgs = chat.build_messages("You are helpful.", [("hi", "hello")], "What now?")
    ids = torch.tensor([prompt_ids(tok, msgs)])
    ends = end_token_ids(tok)
    with torch.no_grad():
        out = model.generate(input_ids=ids, attention_mask=torch.ones_like(ids), max_new_tokens=16, do_sample=False,
                             eos_token_id=ends, pad_token_id=ends[0], temperature=None, top_p=None, top_k=None)
    reference = tok.decode(out[0, ids.shape[1]:], skip_special_tokens=True)
    assert reference.strip() and chat.generate(model, tok, msgs, max_new_tokens=16) == reference


def test_sampling_draws_a_fresh_seed_unless_given(tiny):
    model, tok = tiny
    msgs = chat.build_messages(None, [], "tell me something")
    kw = dict(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=1.0)
    assert chat.generate(model, tok, msgs, seed=3, **kw) == chat.generate(model, tok, msgs, seed=3, **kw)
    assert len({chat.generate(model, tok, msgs, **kw) for _ in range(4)}) > 1


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


def test_stopped_run_chats_with_its_last_verified_checkpoint(tmp_path, capsys):
    from tests.training.conftest import stopped_run

    stopped_run(tmp_path)
    model, tok, cfg = chat.load_run_model("stopped-run")
    base, _, _ = chat.load_base_model("stopped-run")
    msgs = chat.build_messages(cfg["system_prompt"], [], "code 1")
    assert chat.generate(model, tok, msgs, max_new_tokens=8) != chat.generate(base, tok, msgs, max_new_tokens=8)
    capsys.readouterr()
    assert main(["chat", "stopped-run", "--prompt", "code 1"]) == 0
    assert "as of step 3 of 8" in capsys.readouterr().err


def test_truncated_adapter_is_exit_2_not_a_traceback(tmp_path, capsys):
    from core.workspace import run_dir

    run_id = make_run(tmp_path)
    weights = run_dir(run_id) / "adapter" / "adapter.safetensors"
    weights.write_bytes(weights.read_bytes()[:100])
    assert main(["chat", run_id, "--prompt", "hello"]) == 2
    err = capsys.readouterr().err
    assert "damaged or incomplete" in err and "Traceback" not in err


def test_model_folder_that_cannot_load_is_exit_2(tmp_path, capsys):
    from core.fileio import atomic_write_json, read_json
    from core.models import tiny_model
    from core.workspace import run_dir

    model, tok = tiny_model("tiny-llama")
    model.save_pretrained(tmp_path / "m")
    tok.save_pretrained(tmp_path / "m")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\x00" * 64)
    run_id = make_run(tmp_path)
    cfg = read_json(run_dir(run_id) / "config.json")
    atomic_write_json(run_dir(run_id) / "config.json", {**cfg, "model": str(tmp_path / "m")})
    assert main(["chat", run_id, "--prompt", "hello", "--base"]) == 2
    err = capsys.readouterr().err
    assert "could not be loaded" in err and "Traceback" not in err


def test_chat_verb_fast_answers_with_int8_weights(tmp_path, monkeypatch, capsys):
    from core.decoding import int8

    run_id = make_run(tmp_path)
    made = []
    monkeypatch.setattr(chat, "quantize_for_chat", lambda m: made.append(int8.quantize_for_chat(m)) or made[-1])
    assert main(["chat", run_id, "--prompt", "hello", "--fast"]) == 0
    assert made and getattr(made[0], "int8_quantized", False)
    assert capsys.readouterr().out.endswith("\n")
