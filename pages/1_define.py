"""Step 1 · Define: the assistant's name, purpose, persona, system prompt and base model; a quick hello check."""
import streamlit as st

from ui import labeler, t, update_project
from ui.common import ensure_shell, header, next_step
from ui.models import model_panel

ensure_shell()

PURPOSES = ("support", "knowledge", "classification", "style", "chat")
EXAMPLES = ("support", "routing", "zh_support")
BASE_CHOICES = ("default", "local", "hub")

project = header("define")

st.subheader(t("define.examples"))
cols = st.columns(len(EXAMPLES))
for col, example in zip(cols, EXAMPLES):
    if col.button(t(f"define.example.{example}.label"), key=f"ex_{example}", width="stretch"):
        project = update_project(name=t(f"define.example.{example}.name"),
                                 purpose=t(f"define.example.{example}.purpose"),
                                 persona=t(f"define.example.{example}.persona"),
                                 system_prompt=t(f"define.example.{example}.prompt"))
        for k in ("f_name", "f_purpose", "f_persona", "f_prompt"):
            st.session_state.pop(k, None)

model = project["base_model"]
base_kind = "default" if model in ("smollm2-135m-instruct", "default") else \
    "local" if model.startswith(("/", ".", "~")) else "tiny" if model.startswith("tiny-") else "hub"

with st.form("define"):
    name = st.text_input(t("define.name"), value=project["name"], key="f_name", placeholder=t("define.name_ph"))
    purpose = st.selectbox(t("define.purpose"), PURPOSES, key="f_purpose", format_func=labeler("purpose.{}"),
                           index=PURPOSES.index(project["purpose"]) if project["purpose"] in PURPOSES else 0)
    persona = st.text_area(t("define.persona"), value=project["persona"], key="f_persona",
                           placeholder=t("define.persona_ph"), height=80)
    prompt = st.text_area(t("define.prompt"), value=project["system_prompt"], key="f_prompt",
                          placeholder=t("define.prompt_ph"), height=110, help=t("define.prompt_help"))
    choices = BASE_CHOICES + (("tiny",) if base_kind == "tiny" else ())  # tiny test models only when already set
    kind = st.radio(t("define.base"), choices, index=choices.index(base_kind), horizontal=True,
                    format_func=labeler("define.base.{}"))
    custom = st.text_input(t("define.base_custom"), value=model if base_kind in ("local", "hub", "tiny") else "",
                           help=t("define.base_custom_help"))
    if st.form_submit_button(t("define.save"), type="primary"):
        base = "smollm2-135m-instruct" if kind == "default" else custom.strip()
        if not name.strip() or not prompt.strip():
            st.error(t("define.missing"), icon="⚠️")
        elif not base:
            st.error(t("define.missing_model"), icon="⚠️")
        else:
            from core.models import resolve

            resolve(base)  # refuses a folder that does not exist, with the engine's own message
            project = update_project(name=name.strip(), purpose=purpose, persona=persona.strip(),
                                     system_prompt=prompt.strip(), base_model=base)
            st.success(t("define.saved"), icon="💾")

st.subheader(t("define.hello_title"))
st.caption(t("define.hello_intro"))
model_panel(project["base_model"], project["system_prompt"] or None, key="define")
next_step("define")
