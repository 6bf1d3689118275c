"""The Serve tab of page 8: a run's OpenAI-compatible server started and stopped in the background, its status,
and copy-ready snippets (curl, the openai Python client, a .env line).

The server is a ``python -m core serve`` job (``core.serve``), so it outlives the browser; the tab finds it again
through ``server_status`` on every run of the page. The API key lives only in this browser session and in the
server's environment: it is never written to a file, a log or the command line.
"""
from __future__ import annotations

import json
import secrets
from typing import Optional

import streamlit as st

from core.serve import server_status, start_server, stop_server
from core.serve.cli import DEFAULT_PORT, model_id
from core.serve.control import key_id
from ui.common import guarded, show_error
from ui.i18n import labeler, t

POLL_S = 1.0
KEY_PLACEHOLDER = "<your API key>"
NO_KEY = "not-needed"  # the openai client insists on some key; a server without one ignores it


def new_api_key() -> str:
    """A fresh random API key (``af-`` + 32 URL-safe characters)."""
    return "af-" + secrets.token_urlsafe(24)


def snippets(url: str, model: str, api_key: Optional[str], auth: bool) -> dict[str, str]:
    """Copy-ready ``curl`` (non-streaming), openai-client ``python`` and ``env`` text for a server at ``url``."""
    key = (api_key or KEY_PLACEHOLDER) if auth else NO_KEY
    body = json.dumps({"model": model, "messages": [{"role": "user", "content": "Hello!"}]}, ensure_ascii=False)
    auth_line = f'  -H "Authorization: Bearer {key}" \\\n' if auth else ""
    curl = (f"curl {url}/chat/completions \\\n  -H \"Content-Type: application/json\" \\\n{auth_line}"
            f"  -d '{body}'")
    python = (f"from openai import OpenAI\n\n"
              f"client = OpenAI(base_url={url!r}, api_key={key!r})\n"
              f"reply = client.chat.completions.create(\n"
              f"    model={model!r},\n"
              f"    messages=[{{\"role\": \"user\", \"content\": \"Hello!\"}}],\n"
              f")\n"
              f"print(reply.choices[0].message.content)")
    env = f"OPENAI_BASE_URL={url}\nOPENAI_API_KEY={key}"
    return {"curl": curl, "python": python, "env": env}


def _key_name(run_id: str) -> str:
    return f"serve_key_{run_id}"


def _kept_key(run_id: str) -> str:
    # the key the server was started with: Streamlit drops a widget's state while it is not drawn (the key box is
    # hidden while the server runs), so the snippets read this plain session entry instead
    return f"serve_started_key_{run_id}"


def _generate_key(run_id: str) -> None:
    st.session_state[_key_name(run_id)] = new_api_key()  # a callback: runs before the key's widget is drawn


def serve_tab(run_id: str) -> None:
    """The server of ``run_id``: settings and Start while it is down, status, URL, snippets and Stop while up."""
    st.markdown(t("serve.intro"))
    status = server_status(run_id)
    if status["state"] in ("starting", "running"):
        if st.button(t("serve.stop"), key="serve_stop", type="primary"):
            with st.spinner(t("serve.stopping")):
                stop_server(run_id)
            st.rerun()
        if status["state"] == "starting":
            starting(run_id)
        else:
            running(run_id, status)
        return
    if status["state"] == "failed":
        st.error(t("serve.failed"), icon="💥")
        st.code(status["log_tail"] or t("serve.no_log"), language=None)
    elif status["state"] == "stopped":
        st.info(t("serve.stopped"), icon="⏹️")
    settings_and_start(run_id)


def settings_and_start(run_id: str) -> None:
    """Which model, port, optional API key, and Start."""
    c1, c2 = st.columns(2)
    side = c1.radio(t("serve.model"), ["tuned", "base"], format_func=labeler("serve.side.{}"), key="serve_side",
                    horizontal=True)
    port = c2.number_input(t("serve.port"), min_value=1024, max_value=65535, value=DEFAULT_PORT, step=1,
                           key="serve_port", help=t("serve.port_help"))
    merged = st.toggle(t("serve.merged"), key="serve_merged", value=False, disabled=side == "base",
                       help=t("serve.merged_help"))
    k1, k2 = st.columns([3, 1])
    if _key_name(run_id) not in st.session_state and st.session_state.get(_kept_key(run_id)):
        st.session_state[_key_name(run_id)] = st.session_state[_kept_key(run_id)]  # the same key after a Stop
    api_key = k1.text_input(t("serve.api_key"), key=_key_name(run_id), type="password", help=t("serve.api_key_help"))
    k2.button(t("serve.generate_key"), key="serve_genkey", on_click=_generate_key, args=(run_id,))
    if st.button(t("serve.start"), key="serve_start", type="primary"):
        try:
            start_server(run_id, port=int(port), api_key=api_key.strip(), base=side == "base",
                         merged=merged and side != "base")
            st.session_state[_kept_key(run_id)] = api_key.strip()
        except Exception as exc:  # noqa: BLE001 - a UserError in the engine's words, anything else as a note
            show_error(exc)
            return
        st.rerun()


@st.fragment(run_every=POLL_S)
@guarded
def starting(run_id: str) -> None:
    """Polled every second while the model loads; once the server listens (or exits) the whole tab redraws, and
    the polling stops (a running server costs the page nothing)."""
    if server_status(run_id)["state"] != "starting":
        st.rerun(scope="app")
    st.info(t("serve.starting"), icon="⏳")


def running(run_id: str, status: dict) -> None:
    """The URL, which model answers, and the snippets."""
    model = status.get("model") or model_id(run_id, status["base"])
    st.success(t("serve.running", url=status["url"], model=model), icon="🟢")
    st.caption(t("serve.auth_on") if status["auth"] else t("serve.auth_off"))
    known = st.session_state.get(_kept_key(run_id)) or None
    if known and key_id(known) != status.get("key_id"):
        known = None  # started from another browser session with another key: never show a wrong one
    if status["auth"] and not known:
        st.caption(t("serve.key_unknown"))
    code = snippets(status["url"], model, known, status["auth"])
    for name, language in (("curl", "bash"), ("python", "python"), ("env", "bash")):
        st.markdown(f"**{t(f'serve.snippet.{name}')}**")
        st.code(code[name], language=language)
