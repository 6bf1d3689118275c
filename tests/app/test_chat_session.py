"""Page 8's chat keeps a ChatSession (with its KV cache) per side between turns: a new turn encodes only the new
message; Clear resets it; another system prompt starts a new one."""
from __future__ import annotations

import pytest

from core.checkpoints import usable_weights
from tests.app.conftest import open_page, write_project
from tests.app.test_evaluate_chat import answered
from tests.serve.conftest import RUN_ID, make_serve_run
from ui.chatview import SESSIONS, side_history


@pytest.fixture
def chat_run(workspace, tmp_path):
    make_serve_run(tmp_path)
    write_project(workspace, active_run=RUN_ID)
    return RUN_ID


def _counting(session) -> list[int]:
    """Record how many tokens each forward pass of the session's model runs."""
    fed, forward = [], session.runner.forward

    def counted(ids, *args, **kwargs):
        fed.append(int(ids.shape[-1]))
        return forward(ids, *args, **kwargs)
    session.runner.forward = counted
    return fed


def test_a_new_turn_encodes_only_the_new_message(chat_run):
    at = open_page("8_chat_export")
    at.slider(key="max_new").set_value(16)
    key = f"chat_{chat_run}_{usable_weights(chat_run).step}_True"
    at.chat_input[0].set_value("Where is my order?").run(timeout=120)
    at = answered(at, key, 1)
    tuned = at.session_state[SESSIONS]["tuned"][1]
    base = at.session_state[SESSIONS]["base"][1]
    held = len(tuned.ids)  # system prompt, question and answer: all in the cache
    assert held > 20
    fed = _counting(tuned)
    at.chat_input[0].set_value("Thanks").run(timeout=120)
    at = answered(at, key, 2)
    assert at.session_state[SESSIONS]["tuned"][1] is tuned  # the same session, its cache kept
    conv = at.session_state[key]
    assert all(n == 1 for n in fed[1:])  # after the prefill, one token per decoding step
    prompt_len = len(tuned.ids) - sum(fed[1:])  # the second turn's whole rendered prompt
    first_turn = tuned.tok.apply_chat_template(  # system prompt and first question: never encoded again
        tuned.messages[:2], add_generation_prompt=True, tokenize=True)
    first_turn = first_turn["input_ids"] if isinstance(first_turn, dict) else first_turn
    # the prefill skipped at least the first turn (a random tiny model's answer may re-tokenise differently, so
    # its tail can be re-run; a real model's answer re-tokenises the same and is skipped too)
    assert 0 < fed[0] <= prompt_len - len(first_turn)
    assert prompt_len > held
    assert tuned.messages[1:] == side_history(conv, "tuned")  # [0] is the run's system prompt
    assert base.messages[2]["content"] == conv["base"][1]  # the base model's history holds its own answer

    at.button(key="clear").click().run()
    assert tuned.ids == [] and base.ids == [] and at.session_state[key]["messages"] == []

    at.text_area(key=f"sys_{chat_run}").set_value("Answer in one word.")
    at.chat_input[0].set_value("Hello").run(timeout=120)
    at = answered(at, key, 1)
    fresh = at.session_state[SESSIONS]["tuned"][1]
    assert fresh is not tuned and fresh.system_prompt == "Answer in one word."


def test_fast_answers_switch_answers_from_an_int8_copy(chat_run):
    at = open_page("8_chat_export")
    at.slider(key="max_new").set_value(8)
    at.toggle(key="compare").set_value(False)
    at.toggle(key="fast").set_value(True)
    key = f"chat_{chat_run}_{usable_weights(chat_run).step}_True"
    at.chat_input[0].set_value("Where is my order?").run(timeout=120)
    at = answered(at, key, 1)
    session = at.session_state[SESSIONS]["tuned"][1]
    assert getattr(session.runner.model, "int8_quantized", False)  # the int8 copy answered
    assert at.session_state[key]["messages"][1]["role"] == "assistant"
    at.toggle(key="fast").set_value(False)
    at.chat_input[0].set_value("Thanks").run(timeout=120)
    at = answered(at, key, 2)
    assert not getattr(at.session_state[SESSIONS]["tuned"][1].runner.model, "int8_quantized", False)
