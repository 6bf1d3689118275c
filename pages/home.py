"""Home: what the 8-step line does, which base model is active and whether it is loaded, a hello check."""
import streamlit as st

from ui import load_project, t
from ui.common import STEP_ICONS, ensure_shell, page_link
from ui.models import model_panel
from core.project import STEPS, step_done

ensure_shell()

project = load_project()
st.title(t("home.title"))
st.markdown(t("home.tagline"))

done = step_done(project)
todo = next((s for s in STEPS if not done[s]), None)
if todo:  # one obvious next action: where this project continues
    label = t("home.start") if todo == STEPS[0] else t("home.continue", step=t(f"step.{todo}"))
    page_link(todo, label, icon="🚀")
else:
    st.success(t("home.all_done"), icon="🎉")
cols = st.columns(4)
for i, step in enumerate(STEPS):
    with cols[i % 4].container(border=True):
        mark = "✅" if done[step] else STEP_ICONS[step]
        st.markdown(f"**{mark} {i + 1}. {t(f'step.{step}')}**")
        st.caption(t(f"home.step.{step}"))
        page_link(step, t("home.open"), icon="➡️")

st.markdown(t("home.how"))
st.divider()
st.subheader(t("home.model_title"))
model_panel(project["base_model"], project.get("system_prompt") or None, key="home")
