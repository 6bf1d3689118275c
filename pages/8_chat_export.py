"""Step 8 · Chat & Export: stream answers from the tuned assistant beside the base model; download the results;
serve the run as an OpenAI-compatible API in the background.

Any run with usable weights works here: the final adapter, or a stopped or failed run's newest checkpoint
("as of step N"). Models load in background threads; the page shows their progress and never waits on them.
"""
from pathlib import Path

import streamlit as st

from core.export import FORMATS, available, build_export, report_html, zip_path
from core.fileio import read_json
from core.workspace import run_dir
from ui import t
from ui.chatview import (answered_turns, base_loader, chat_session, chat_stream, conversation, reset_sessions,
                         side_history, tuned_loader)
from ui.checksview import earlier_bad_answers, export_gate, mark_bad_control, record_confirmation
from ui.common import ensure_shell, header, need, show_error
from ui.exportview import gated, gguf_card, reader
from ui.models import loading_fragment
from ui.runview import run_status, weights_panel
from ui.serveview import serve_tab

ensure_shell()

project = header("chat_export")
run_id = project.get("active_run")
if not need(bool(run_id) and run_dir(run_id).exists(), "chat.need_run", "train"):
    st.stop()
weights = weights_panel(run_id, run_status(run_id))
if weights is None:
    st.stop()
config = read_json(run_dir(run_id) / "config.json", {}) or {}
PENDING = f"chat_pending_{run_id}"


def _text(streamed) -> str:
    return streamed if isinstance(streamed, str) else "".join(map(str, streamed))


def _bubble(where, who: str, text: str) -> None:
    with where.chat_message("assistant", avatar="🏭" if who == "tuned" else "🧱"):
        st.caption(t(f"chat.{who}"))
        st.write(text if text.strip() else t("model.empty_answer"))


def show_history(conv: dict) -> None:
    """The conversation so far: each tuned answer beside the base model's answer to the same turn, with
    "mark as bad" under it (its nearest training rows, once marked)."""
    questions = {i: q for i, q, _ in answered_turns(conv["messages"])}
    for i, message in enumerate(conv["messages"]):
        if message["role"] == "user":
            with st.chat_message("user"):
                st.write(message["content"])
            continue
        base = conv["base"].get(i)
        cols = st.columns(2) if base is not None else [st.container()]
        _bubble(cols[0], "tuned", message["content"])
        if base is not None:
            _bubble(cols[1], "base", base)
        if (config.get("objective") or "sft") == "sft":  # a preference run's data has no rows to trace back to
            mark_bad_control(st.container(), run_id, questions[i], message["content"], weights.step, f"bad_{i}")


def _stream_into(where, who: str, loader, conv: dict, prompt: str, system_prompt, max_new: int,
                 fast: bool) -> str:
    with where.chat_message("assistant", avatar="🏭" if who == "tuned" else "🧱"):
        st.caption(t(f"chat.{who}"))
        session = chat_session(who, loader, system_prompt, fast)  # keeps its KV cache: only the new turn is encoded
        text = _text(st.write_stream(chat_stream(session, side_history(conv, who), prompt, max_new)))
        if not text.strip():
            st.caption(t("model.empty_answer"))
    return text


def answer(conv: dict, prompt: str, system_prompt: str, compare: bool, max_new: int, fast: bool = False) -> None:
    """Answer the pending prompt once its models are loaded (a fragment shows the loading meanwhile)."""
    with st.chat_message("user"):
        st.write(prompt)
    loaders = [tuned_loader(run_id, weights)]
    if compare:
        loaders.append(base_loader(config.get("model") or project["base_model"]))
    if not all(loader.done for loader in loaders):
        loading_fragment(tuple(loader.name for loader in loaders))
        return
    st.session_state.pop(PENDING, None)
    failed = next((loader.error for loader in loaders if loader.error), None)
    if failed is not None:
        show_error(failed)
        return
    system = system_prompt.strip() or None
    cols = st.columns(2) if compare else [st.container()]
    tuned = _stream_into(cols[0], "tuned", loaders[0], conv, prompt, system, max_new, fast)
    base = _stream_into(cols[1], "base", loaders[1], conv, prompt, system, max_new, fast) if compare else None
    conv["messages"] += [{"role": "user", "content": prompt}, {"role": "assistant", "content": tuned}]
    if base is not None:
        conv["base"][len(conv["messages"]) - 1] = base
    if (config.get("objective") or "sft") == "sft":  # the newest answer can be marked at once, as the history's can
        mark_bad_control(st.container(), run_id, prompt, tuned, weights.step, f"bad_{len(conv['messages']) - 1}")


def chat_tab() -> None:
    """Settings, the conversation, the input."""
    c1, c2, c3 = st.columns([3, 1, 1])
    system_prompt = c1.text_area(t("chat.system_prompt"), height=80, key=f"sys_{run_id}",
                                 value=config.get("system_prompt") or project.get("system_prompt") or "")
    compare = c2.toggle(t("chat.compare"), value=True, key="compare")
    fast = c2.toggle(t("chat.fast"), value=False, key="fast", help=t("chat.fast.help"))  # off: answers may differ
    max_new = c3.slider(t("chat.max_tokens"), 16, 512, 128, step=16, key="max_new")
    conv = conversation(run_id, weights)
    if c3.button(t("chat.clear"), key="clear"):
        conv["messages"].clear()
        conv["base"].clear()
        reset_sessions()
        st.session_state.pop(PENDING, None)
    earlier_bad_answers(run_id, {(q, a) for _, q, a in answered_turns(conv["messages"])})  # marked in other sessions
    show_history(conv)
    turn = st.container()  # the new exchange appears above the input, after the history
    prompt = st.chat_input(t("chat.input"))
    if prompt:
        st.session_state[PENDING] = prompt
    if st.session_state.get(PENDING):
        with turn:
            answer(conv, st.session_state[PENDING], system_prompt, compare, max_new, fast)


def export_card(fmt: str, method: str, allowed: bool = True, record: bool = False) -> None:
    """One export format: what it is, Build, and a download built only when clicked."""
    with st.container(border=True):
        c1, c2 = st.columns([3, 2])
        c1.markdown(f"**{t(f'export.{fmt}.title')}**")
        c1.caption(t(f"export.{fmt}.desc"))
        if not available(method, fmt):
            c2.caption(t("export.not_for_method", method=t(f"method.{method}.name")))
            return
        target = zip_path(run_id, fmt, weights)
        if c2.button(t("export.build" if not target.exists() else "export.rebuild"), key=f"build_{fmt}",
                     disabled=not allowed):
            with st.status(t("export.building", fmt=t(f"export.{fmt}.title"))) as box:
                try:
                    if record:  # a failing release gate, confirmed: the report keeps who exported it anyway
                        record_confirmation(run_id)
                    target = build_export(run_id, fmt)
                    box.update(label=t("export.built", size=target.stat().st_size / 1e6), state="complete")
                except Exception as exc:  # noqa: BLE001 - shown, the page keeps working
                    box.update(state="error")
                    show_error(exc)
        if target.exists():  # the bytes are read when the button is clicked, not on every rerun
            c2.download_button(t("export.download", size=target.stat().st_size / 1e6), data=reader(target),
                               file_name=target.name, mime="application/zip",
                               key=f"dl_{fmt}", type="primary", **gated(allowed, record, run_id))


def export_tab() -> None:
    """The export formats of the run's usable weights and the evaluation report."""
    st.markdown(t("export.intro"))
    if not weights.final:
        st.caption(t("export.as_of", step=weights.step))
    allowed, record = export_gate(run_id)
    for fmt in FORMATS:
        export_card(fmt, config.get("method", "lora"), allowed, record)
    gguf_card(run_id, weights, config.get("method", "lora"), allowed, record)
    with st.container(border=True):
        st.markdown(f"**{t('export.report.title')}**")
        html = report_html(run_id)
        if html:
            st.download_button(t("export.report.download"), data=reader(html), file_name=f"{run_id}-report.html",
                               mime="text/html", key="dl_report")
        else:
            st.caption(t("export.report.missing"))


tab_chat, tab_export, tab_serve = st.tabs([t("chat.tab_chat"), t("chat.tab_export"), t("chat.tab_serve")])
with tab_chat:
    chat_tab()
with tab_export:
    export_tab()
with tab_serve:
    serve_tab(run_id)
