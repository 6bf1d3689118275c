"""The chat page's models (loaded in background threads) and its conversation in the session.

A conversation is the standard list of ``{"role", "content"}`` messages (user turns and the tuned model's answers)
plus, for the turns asked with "compare", the base model's answer by message index.
"""
from __future__ import annotations

from typing import Iterator

import streamlit as st

from core.chat import generate, load_run_model
from core.checkpoints import UsableWeights
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


def chat_stream(model, tok, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
    """Text pieces of the answer, for ``st.write_stream``."""
    return generate(model, tok, messages, max_new_tokens=max_new_tokens, stream=True)
