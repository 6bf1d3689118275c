"""Step 1 · Define: the assistant's name, purpose, persona, system prompt and base model; a quick hello check."""
import streamlit as st

from ui import labeler, load_project, t, update_project
from ui.common import ensure_shell, header, next_step
from ui.models import model_panel
from core.defaults import DEFAULT_MODEL
from core.errors import UserError
from core.chat_template import TEMPLATES
from core.models import choose_chat_template, describe_model, resolve, scan_hf_cache

ensure_shell()

PURPOSES = ("support", "knowledge", "classification", "style", "chat")
EXAMPLES = ("support", "routing", "zh_support")
BASE_CHOICES = ("default", "local", "cache", "hub")
KIND_OF_SOURCE = {"embedded-gguf": "default", "local": "local", "hub": "hub", "tiny": "tiny"}

project = header("define")

FIELDS = {"f_name": "name", "f_purpose": "purpose", "f_persona": "persona", "f_prompt": "system_prompt"}
for key, field in FIELDS.items():  # the form starts from the saved project (widget state then lives in the session)
    st.session_state.setdefault(key, project[field] if field != "purpose" or project[field] in PURPOSES else PURPOSES[0])


def use_example(example: str) -> None:
    """Fill the form and the project from an example (a callback: runs before the widgets are drawn)."""
    values = {field: t(f"define.example.{example}.{'prompt' if field == 'system_prompt' else field}")
              for field in FIELDS.values()}
    update_project(**values)
    for key, field in FIELDS.items():
        st.session_state[key] = values[field]


st.subheader(t("define.examples"))
cols = st.columns(len(EXAMPLES))
for col, example in zip(cols, EXAMPLES):
    col.button(t(f"define.example.{example}.label"), key=f"ex_{example}", width="stretch", on_click=use_example,
               args=(example,))
project = load_project()

model = project["base_model"]
cached = [m["id"] for m in scan_hf_cache()]  # models already downloaded: usable offline by their Hub id
try:
    base_kind = KIND_OF_SOURCE[resolve(model).source]
except UserError:  # a saved folder that is gone since: shown as the folder it was, Save says what is wrong
    base_kind = "local"
if base_kind == "hub" and model in cached:
    base_kind = "cache"

with st.form("define"):
    name = st.text_input(t("define.name"), key="f_name", placeholder=t("define.name_ph"))
    purpose = st.selectbox(t("define.purpose"), PURPOSES, key="f_purpose", format_func=labeler("purpose.{}"))
    persona = st.text_area(t("define.persona"), key="f_persona", placeholder=t("define.persona_ph"), height=80)
    prompt = st.text_area(t("define.prompt"), key="f_prompt", placeholder=t("define.prompt_ph"), height=110,
                          help=t("define.prompt_help"))
    choices = BASE_CHOICES + (("tiny",) if base_kind == "tiny" else ())  # tiny test models only when already set
    kind = st.radio(t("define.base"), choices, index=choices.index(base_kind), horizontal=True,
                    format_func=labeler("define.base.{}"))
    custom = st.text_input(t("define.base_custom"), value=model if base_kind in ("local", "hub", "tiny") else "",
                           help=t("define.base_custom_help"))
    if cached:
        from_cache = st.selectbox(t("define.cache_pick"), cached, index=cached.index(model) if model in cached else 0)
    else:
        from_cache = ""
        st.caption(t("define.cache_none"))
    if st.form_submit_button(t("define.save"), type="primary"):
        base = {"default": DEFAULT_MODEL, "cache": from_cache}.get(kind, custom.strip())
        if not name.strip() or not prompt.strip():
            st.error(t("define.missing"), icon="⚠️")
        elif not base:
            st.error(t("define.missing_model"), icon="⚠️")
        else:
            resolve(base)  # refuses a folder that does not exist, with the engine's own message
            project = update_project(name=name.strip(), purpose=purpose, persona=persona.strip(),
                                     system_prompt=prompt.strip(), base_model=base)
            st.success(t("define.saved"), icon="💾")



def model_facts(name: str) -> None:
    """Size, family, context length and chat template of the chosen model; a template choice when it has none."""
    try:
        facts = describe_model(name)
    except UserError as exc:
        st.warning(t("define.facts_error", error=str(exc)), icon="⚠️")
        return
    template = (t("define.template.own") if facts["own_chat_template"] else
                t("define.template.chosen", name=facts["chosen_template"]) if facts["chosen_template"] else
                t("define.template.none"))
    params = f"{facts['params']:,}" if facts["params"] else "?"
    st.info(t("define.facts", name=name, family=facts["family"], params=params, context=facts["context"],
              template=template), icon="🧠")
    if facts["own_chat_template"]:
        return
    if not facts["chosen_template"]:
        st.warning(t("define.no_template"), icon="⚠️")
    pick = st.selectbox(t("define.template_pick"), list(TEMPLATES), format_func=labeler("define.template.{}"),
                        key="template_pick")
    if st.button(t("define.template_apply"), key="template_apply"):
        choose_chat_template(name, pick)
        st.success(t("define.template_applied", name=pick), icon="✅")


model_facts(project["base_model"])

st.subheader(t("define.hello_title"))
st.caption(t("define.hello_intro"))
model_panel(project["base_model"], project["system_prompt"] or None, key="define")
next_step("define")
