"""Models for the chat page, cached per process, and a text stream for st.write_stream."""
from __future__ import annotations

from typing import Iterator

import streamlit as st

from core.workspace import run_dir
from ui.loader import get_loader


def _adapter_stamp(run_id: str) -> float:
    """Changes when the run's adapter is rewritten (a resumed run), so the cache reloads it."""
    try:
        return max(p.stat().st_mtime for p in (run_dir(run_id) / "adapter").iterdir())
    except (FileNotFoundError, ValueError):
        return 0.0


@st.cache_resource(max_entries=2, show_spinner=False)
def _load_tuned(run_id: str, stamp: float):
    from core.chat import load_run_model

    model, tok, _config = load_run_model(run_id)
    return model, tok


def tuned_model(run_id: str):
    """``(model, tokenizer)`` of a run with its adapter applied."""
    return _load_tuned(run_id, _adapter_stamp(run_id))


def base_model(name: str):
    """The base model, shared with the home page's loader."""
    loader = get_loader(name)
    loader.thread.join()
    if loader.error:
        raise loader.error
    return loader.result


def chat_stream(model, tok, messages: list[dict], max_new_tokens: int) -> Iterator[str]:
    """Text pieces from ``core.chat.generate(stream=True)``."""
    from core.chat import generate

    result = generate(model, tok, messages, max_new_tokens=max_new_tokens, stream=True)
    if isinstance(result, str):  # an engine without streaming still answers
        yield result
        return
    for piece in result:
        yield piece if isinstance(piece, str) else str(piece)
