"""The base-model panel (active model, loaded or not, progress while loading, the hello check)."""
from __future__ import annotations

import time
from typing import Optional

import streamlit as st

from core.errors import UserError
from ui.common import guarded, show_error
from ui.i18n import t
from ui.loader import get_loader


def describe(name: str) -> dict:
    """Where the model comes from and whether its cache is ready (no loading)."""
    from core.models import resolve

    try:
        info = resolve(name)
    except UserError as exc:
        return {"name": name, "source": "?", "cached": False, "error": str(exc)}
    return {"name": info.name, "source": info.source, "cached": info.cached, "error": None}


def model_panel(name: str, system_prompt: Optional[str], key: str) -> None:
    """Show the model's state; a button loads it (progress polled by a fragment) and asks it to say hello."""
    info = describe(name)
    loader = get_loader(name, start=False)
    c1, c2, c3 = st.columns(3)
    short = "SmolLM2-135M" if info["source"] == "embedded-gguf" else info["name"].rstrip("/").split("/")[-1]
    c1.metric(t("model.active"), short, help=info["name"])
    c2.metric(t("model.source"), t(f"model.source.{info['source']}") if info["source"] != "?" else "?")
    state = "loaded" if loader and loader.result else "loading" if loader and not loader.done else \
        "cached" if info["cached"] else "not_loaded"
    c3.metric(t("model.state"), t(f"model.state.{state}"))
    if info["error"]:
        st.error(info["error"], icon="⚠️")
        return
    if state == "not_loaded" and info["source"] == "embedded-gguf":
        st.caption(t("model.first_time"))
    if st.button(t("model.hello_button"), key=f"{key}_hello", type="primary"):
        st.session_state[f"{key}_hello_wanted"] = True
        get_loader(name)  # loads in its own thread; the fragment below polls it
    if st.session_state.get(f"{key}_hello_wanted"):
        loader = get_loader(name, start=False)
        if loader is not None and loader.done:
            _hello_answer(loader, system_prompt, key)
        elif loader is not None:
            loading_fragment((name,), first_time=not info["cached"] and info["source"] == "embedded-gguf")


@st.fragment(run_every=1.0)
@guarded
def loading_fragment(names: tuple, first_time: bool = False) -> None:
    """Polls background loads every second; a full rerun once all are done stops the polling."""
    loaders = [get_loader(n, start=False) for n in names]
    if all(loader is None or loader.done for loader in loaders):
        st.rerun(scope="app")
    if first_time:
        st.caption(t("model.first_time"))
    for loader in loaders:
        if loader is not None and not loader.done:
            st.progress(loader.fraction, text=t("model.loading", message=loader.message or "…",
                                                seconds=int(time.time() - loader.started)))


def _hello_answer(loader, system_prompt: Optional[str], key: str) -> None:
    """Ask the loaded model to say hello (the answer is kept in the session)."""
    if loader.error:
        show_error(loader.error)
        return
    answer_key = f"{key}_hello_answer_{loader.name}_{system_prompt}"
    if answer_key not in st.session_state:
        from core.models import generate_reply

        model, tok = loader.result
        with st.spinner(t("model.thinking")):
            st.session_state[answer_key] = generate_reply(model, tok, t("model.hello_prompt"), system_prompt)
    with st.chat_message("user"):
        st.write(t("model.hello_prompt"))
    with st.chat_message("assistant"):
        st.write(st.session_state[answer_key] or t("model.empty_answer"))
