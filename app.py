"""Assistant Factory: st.navigation over the 8-step line, the shared sidebar and a friendly error wrapper."""
from pathlib import Path

import streamlit as st

from core.workspace import list_ids, workspace_home
from ui import LANGUAGES, load_project, t, update_project
from ui.common import STEP_ICONS, STEP_PAGES, show_error
from ui.project import STEPS, step_done

st.set_page_config(page_title="Assistant Factory", page_icon="🏭", layout="wide")

# The language survives a reload through the URL (?lang=zh); the session keeps it between pages.
if "lang" not in st.session_state:
    st.session_state["lang"] = st.query_params.get("lang") if st.query_params.get("lang") in LANGUAGES else "en"
if st.session_state["lang"] != "en" and st.query_params.get("lang") != st.session_state["lang"]:
    st.query_params["lang"] = st.session_state["lang"]  # page links drop the query: put it back for reloads


def _set_lang() -> None:
    st.session_state["lang"] = st.session_state["lang_select"]
    st.query_params["lang"] = st.session_state["lang"]


def _active_selector(ids: list, field: str, key: str, label: str, empty: str) -> None:
    """A sidebar selectbox bound to project.json (the file wins: another tab or a page may have changed it)."""
    if not ids:
        st.caption(empty)
        return
    current = load_project().get(field)
    if current not in ids:
        current = ids[0]
        update_project(**{field: current})
    st.session_state[key] = current  # set before the widget exists, so the file's value is what it shows

    def changed() -> None:
        update_project(**{field: st.session_state[key]})

    st.selectbox(label, ids, key=key, on_change=changed)


with st.sidebar:
    st.selectbox(t("sidebar.language"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang_select",
                 index=list(LANGUAGES).index(st.session_state["lang"]), on_change=_set_lang)
    _active_selector(list_ids("datasets"), "active_dataset", "sidebar_dataset", t("sidebar.dataset"),
                     t("sidebar.no_dataset"))
    _active_selector(list_ids("runs"), "active_run", "sidebar_run", t("sidebar.run"), t("sidebar.no_run"))
    project = load_project()
    done = step_done(project)
    n_done = sum(done.values())
    st.progress(n_done / len(STEPS), text=t("sidebar.progress", done=n_done, total=len(STEPS)))
    if project.get("name"):
        st.caption(t("sidebar.assistant", name=project["name"], model=project["base_model"]))
    st.caption(t("sidebar.workspace", path=str(workspace_home())))

home = st.Page(STEP_PAGES["home"], title=t("nav.home"), icon="🏭", default=True, url_path="home")
steps = [st.Page(STEP_PAGES[s], title=f"{i}. {t(f'step.{s}')}", icon="✅" if done[s] else STEP_ICONS[s],
                 url_path=s.replace("_", "-")) for i, s in enumerate(STEPS, 1)]
sections = {t("nav.section_start"): [home], t("nav.section_line"): steps}
# Slot for the method lab / explainer (issue 10): listed as soon as pages/learn.py exists.
if (Path(__file__).parent / "pages" / "learn.py").exists():
    sections[t("nav.section_learn")] = [st.Page("pages/learn.py", title=t("nav.learn"), icon="🎓", url_path="learn")]
nav = st.navigation(sections)

try:
    nav.run()
except Exception as exc:  # noqa: BLE001 - st.rerun/st.stop are BaseException and pass through untouched
    show_error(exc)
