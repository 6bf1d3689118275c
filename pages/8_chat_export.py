"""Step 8 · Chat & Export: stream answers from the tuned assistant beside the base model; download the results."""
import streamlit as st

from core.fileio import read_json

from core.workspace import run_dir
from ui import t
from ui.common import ensure_shell, engine, header, need, not_available, show_error
from ui.chatview import base_model, chat_stream, tuned_model
from ui.exports import FORMATS, available, build_export, report_html, zip_path
from ui.runview import run_status

ensure_shell()

project = header("chat_export")
run_id = project.get("active_run")
if not need(bool(run_id) and run_dir(run_id).exists(), "chat.need_run", "train"):
    st.stop()
status = run_status(run_id)
if not need(status.get("state") == "completed", "chat.need_completed", "train"):
    st.stop()
config = read_json(run_dir(run_id) / "config.json", {}) or {}
chat_api = engine("core.chat")

tab_chat, tab_export = st.tabs([t("chat.tab_chat"), t("chat.tab_export")])
with tab_chat:
    c1, c2, c3 = st.columns([3, 1, 1])
    system_prompt = c1.text_area(t("chat.system_prompt"), height=80, key=f"sys_{run_id}",
                                 value=config.get("system_prompt") or project.get("system_prompt") or "")
    compare = c2.toggle(t("chat.compare"), value=True, key="compare")
    max_new = c3.slider(t("chat.max_tokens"), 16, 512, 128, step=16, key="max_new")
    history_key = f"chat_history_{run_id}"
    history = st.session_state.setdefault(history_key, [])
    if c3.button(t("chat.clear"), key="clear"):
        history.clear()
    if chat_api is None or not hasattr(chat_api, "generate"):
        not_available(t("chat.engine"))
    for turn in history:
        with st.chat_message("user"):
            st.write(turn["user"])
        cols = st.columns(2) if turn.get("base") is not None else [st.container()]
        with cols[0].chat_message("assistant", avatar="🏭"):
            st.caption(t("chat.tuned"))
            st.write(turn["tuned"] if turn["tuned"].strip() else t("model.empty_answer"))
        if turn.get("base") is not None:
            with cols[1].chat_message("assistant", avatar="🧱"):
                st.caption(t("chat.base"))
                st.write(turn["base"] if turn["base"].strip() else t("model.empty_answer"))
    new_turn = st.container()  # the new exchange appears above the input, after the history
    prompt = st.chat_input(t("chat.input"), disabled=chat_api is None)
    if prompt:
        with new_turn:
            with st.chat_message("user"):
                st.write(prompt)
            messages = ([{"role": "system", "content": system_prompt}] if system_prompt.strip() else []) + \
                [m for turn in history for m in ({"role": "user", "content": turn["user"]},
                                                 {"role": "assistant", "content": turn["tuned"]})] + \
                [{"role": "user", "content": prompt}]
            cols = st.columns(2) if compare else [st.container()]
            with cols[0].chat_message("assistant", avatar="🏭"):
                st.caption(t("chat.tuned"))
                with st.spinner(t("chat.loading_tuned")):
                    model, tok = tuned_model(run_id)
                tuned = st.write_stream(chat_stream(model, tok, messages, max_new))
                if not str(tuned).strip():
                    st.caption(t("model.empty_answer"))
            base = None
            if compare:
                with cols[1].chat_message("assistant", avatar="🧱"):
                    st.caption(t("chat.base"))
                    with st.spinner(t("chat.loading_base")):
                        bmodel, btok = base_model(config.get("model") or project["base_model"])
                    base = st.write_stream(chat_stream(bmodel, btok, messages, max_new))
                    if not str(base).strip():
                        st.caption(t("model.empty_answer"))
            history.append({"user": prompt, "tuned": tuned if isinstance(tuned, str) else "".join(map(str, tuned)),
                            "base": base if base is None or isinstance(base, str) else "".join(map(str, base))})

with tab_export:
    st.markdown(t("export.intro"))
    if engine("core.peft.cli") is None:
        not_available(t("export.engine"))
    else:
        for fmt in FORMATS:
            with st.container(border=True):
                c1, c2 = st.columns([3, 2])
                c1.markdown(f"**{t(f'export.{fmt}.title')}**")
                c1.caption(t(f"export.{fmt}.desc"))
                target = zip_path(run_id, fmt)
                if not available(config.get("method", "lora"), fmt):
                    c2.caption(t("export.not_for_method", method=t(f"method.{config.get('method', 'lora')}.name")))
                    continue
                if c2.button(t("export.build" if not target.exists() else "export.rebuild"), key=f"build_{fmt}"):
                    with st.status(t("export.building", fmt=t(f"export.{fmt}.title"))) as box:
                        try:
                            target = build_export(run_id, fmt)
                            box.update(label=t("export.built", size=target.stat().st_size / 1e6), state="complete")
                        except Exception as exc:  # noqa: BLE001 - shown, the page keeps working
                            box.update(state="error")
                            show_error(exc)
                if target.exists():
                    with open(target, "rb") as fh:
                        c2.download_button(t("export.download", size=target.stat().st_size / 1e6), fh,
                                           file_name=target.name, mime="application/zip", key=f"dl_{fmt}",
                                           type="primary")
    with st.container(border=True):
        st.markdown(f"**{t('export.report.title')}**")
        html = report_html(run_id)
        if html:
            st.download_button(t("export.report.download"), html.read_bytes(), file_name=f"{run_id}-report.html",
                               mime="text/html", key="dl_report")
        else:
            st.caption(t("export.report.missing"))
