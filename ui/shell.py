"""The app shell: page config, language, sidebar (active dataset and run, progress) and the navigation.

app.py calls ``run_app``. Streamlit's legacy "pages/ folder" mode may run a page file without app.py (a process's
first request to a page URL, every AppTest run); such a page calls ``run_app`` itself through
``ui.common.ensure_shell`` and stops: the same shell, the same error wrapper, the page run once inside it, in the
same script run (a rerun would lose a clicked button's trigger). Public API only.
"""
from __future__ import annotations

import streamlit as st

from core.project import STEPS, load_project, step_done, update_project
from core.workspace import list_ids, workspace_home
from ui.common import STEP_ICONS, STEP_PAGES, show_error
from ui.i18n import LANGUAGES, t

SHELL_DRAWN = "_shell_drawn"  # set by app.py just before it runs a page; the page takes it off


def _initial_lang(saved: object) -> str:
    """The URL's ?lang= first (a shared link), then the language saved in the project, then English."""
    asked = st.query_params.get("lang")
    if asked in LANGUAGES:
        return asked
    return saved if saved in LANGUAGES else "en"


def _set_lang() -> None:
    st.session_state["lang"] = st.session_state["lang_select"]
    st.query_params["lang"] = st.session_state["lang"]
    update_project(language=st.session_state["lang"])  # a new session (another tab, a restart) keeps it


def _active_selector(ids: list, project: dict, field: str, key: str, label: str, empty: str) -> None:
    """A sidebar selectbox bound to project.json (the file wins: another tab or a page may have changed it)."""
    if not ids:
        st.caption(empty)
        return
    current = project.get(field)
    if current not in ids:
        current = ids[0]
        update_project(**{field: current})
    st.session_state[key] = current  # set before the widget exists, so the file's value is what it shows

    def changed() -> None:
        update_project(**{field: st.session_state[key]})

    st.selectbox(label, ids, key=key, on_change=changed)


def _sidebar(project: dict, done: dict) -> None:
    with st.sidebar:
        st.selectbox(t("sidebar.language"), list(LANGUAGES), format_func=LANGUAGES.get, key="lang_select",
                     index=list(LANGUAGES).index(st.session_state["lang"]), on_change=_set_lang)
        _active_selector(list_ids("datasets"), project, "active_dataset", "sidebar_dataset", t("sidebar.dataset"),
                         t("sidebar.no_dataset"))
        _active_selector(list_ids("runs"), project, "active_run", "sidebar_run", t("sidebar.run"),
                         t("sidebar.no_run"))
        n_done = sum(done.values())
        st.progress(n_done / len(STEPS), text=t("sidebar.progress", done=n_done, total=len(STEPS)))
        if project.get("name"):
            st.caption(t("sidebar.assistant", name=project["name"], model=project["base_model"]))
        st.caption(t("sidebar.workspace", path=str(workspace_home())))


def draw_shell():
    """Page config, language, sidebar and ``st.navigation``; returns the page to run."""
    st.set_page_config(page_title="Assistant Factory", page_icon="🏭", layout="wide")
    project = load_project()
    if "lang" not in st.session_state:
        st.session_state["lang"] = _initial_lang(project.get("language"))
    if st.session_state["lang"] != "en" and st.query_params.get("lang") != st.session_state["lang"]:
        st.query_params["lang"] = st.session_state["lang"]  # page links drop the query: put it back for reloads
    done = step_done(project)
    _sidebar(project, done)
    home = st.Page(STEP_PAGES["home"], title=t("nav.home"), icon="🏭", default=True, url_path="home")
    steps = [st.Page(STEP_PAGES[s], title=f"{i}. {t(f'step.{s}')}", icon="✅" if done[s] else STEP_ICONS[s],
                     url_path=s.replace("_", "-")) for i, s in enumerate(STEPS, 1)]
    learn = st.Page("pages/learn.py", title=t("nav.learn"), icon="🎓", url_path="learn")
    return st.navigation({t("nav.section_start"): [home], t("nav.section_line"): steps,
                          t("nav.section_learn"): [learn]})


def run_app() -> None:
    """The shell around the page the navigation chose, with exceptions shown as friendly messages."""
    page = draw_shell()
    st.session_state[SHELL_DRAWN] = True
    try:
        page.run()
    except Exception as exc:  # noqa: BLE001 - st.rerun/st.stop are BaseException and pass through untouched
        show_error(exc)
