"""The chat page's models (loaded in background threads), its conversation and its chat sessions.

A conversation is the standard list of ``{"role", "content"}`` messages (user turns and the tuned model's answers)
plus, for the turns asked with "compare", the base model's answer by message index.

Each side (tuned, base) answers through a ``core.decoding.ChatSession`` kept in the browser session for its
(model, system prompt): the session keeps its KV cache between turns, so a new turn runs only the new message's
tokens. The base side's history holds the base model's own answers (the tuned one's where it was not asked).
"""
from __future__ import annotations

from typing import Iterator

import streamlit as st

from core.chat import load_run_model
from core.checkpoints import UsableWeights
from core.decoding import ChatSession, SamplingParams, quantize_for_chat
from ui.loader import ModelLoader, forget, get_loader


def tuned_loader(run_id: str, weights: UsableWeights, start: bool = True) -> ModelLoader:
    """The loader of a run's tuned model for these weights (new weights of the same run replace the old)."""
    try:
        stamp = max(p.stat().st_mtime_ns for p in weights.path.iterdir())
    except (FileNotFoundError, ValueError):
        stamp = 0
    key = f"run:{run_id}:{weights.path}:{stamp}"
    forget(f"run:{run_id}:", key)
    return get_loader(key, start, load=lambda progress: load_run_model(run_id)[:2])


def base_loader(name: str, start: bool = True) -> ModelLoader:
    """The base model's loader, shared with the home page's hello check."""
    return get_loader(name, start)


def conversation(run_id: str, weights: UsableWeights) -> dict:
    """The session's conversation with these weights: ``{"messages": [...], "base": {index: answer}}``."""
    return st.session_state.setdefault(f"chat_{run_id}_{weights.step}_{weights.final}", {"messages": [], "base": {}})


SESSIONS = "chat_sessions"  # st.session_state: {side: (key, ChatSession)}, one live session per side


def chat_session(side: str, loader: ModelLoader, system_prompt: str | None, fast: bool = False) -> ChatSession:
    """The side's ChatSession for this model, system prompt and weight type (``fast``: int8); a new one (empty
    cache) when any of them changed."""
    store = st.session_state.setdefault(SESSIONS, {})
    key = (loader.name, system_prompt, fast)
    if side not in store or store[side][0] != key:
        model, tok = loader.result
        store[side] = (key, ChatSession(int8_copy(loader.name, model) if fast else model, tok, system_prompt))
    return store[side][1]


INT8 = "chat_int8_models"  # st.session_state: {loader name: int8 copy}, made once per model


def int8_copy(name: str, model):
    """The int8 copy of a loaded model for fast answers (core.decoding.quantize_for_chat), made once."""
    store = st.session_state.setdefault(INT8, {})
    if name not in store:
        store.clear()  # one copy at a time: each is a second model in memory
        store[name] = quantize_for_chat(model)
    return store[name]


def reset_sessions() -> None:
    """Forget every side's conversation and cache ("clear conversation")."""
    for _, session in st.session_state.get(SESSIONS, {}).values():
        session.reset()


def side_history(conv: dict, side: str) -> list[dict]:
    """The conversation as ``side`` saw it: for the base side its own answers where it gave one."""
    if side == "tuned":
        return [dict(m) for m in conv["messages"]]
    return [{**m, "content": conv["base"].get(i, m["content"])} if m["role"] == "assistant" else dict(m)
            for i, m in enumerate(conv["messages"])]


def chat_stream(session: ChatSession, history: list[dict], prompt: str, max_new_tokens: int) -> Iterator[str]:
    """Text pieces of the answer to ``prompt`` after ``history``, for ``st.write_stream`` (greedy).

    The session's messages are set to ``history`` first: when they already match (the usual turn) its cache covers
    all of it and only the new message is encoded; after a change (a turn asked without this side, another run's
    conversation) the cache is cut where the tokens first differ.
    """
    system = [{"role": "system", "content": session.system_prompt}] if session.system_prompt else []
    session.messages = system + history
    return session.stream(prompt, SamplingParams(max_new_tokens=max_new_tokens))


def answered_turns(messages: list[dict]) -> list[tuple[int, str, str]]:
    """(index, the user's question, the tuned answer) of each assistant message of a conversation."""
    out, question = [], ""
    for i, message in enumerate(messages):
        if message["role"] == "user":
            question = message["content"]
        elif message["role"] == "assistant":
            out.append((i, question, message["content"]))
    return out
