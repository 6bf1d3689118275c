"""Streamlit helpers used by every page: header, friendly errors, engine look-ups, links to the next step."""
from __future__ import annotations

import importlib
import logging
from typing import Any, Callable, Optional

import streamlit as st

from core.errors import UserError
from ui.i18n import t
from ui.project import STEPS, load_project

log = logging.getLogger("assistant_factory.ui")

STEP_PAGES = {
    "home": "pages/home.py",
    "define": "pages/1_define.py",
    "upload": "pages/2_upload.py",
    "analyze": "pages/3_analyze.py",
    "prepare": "pages/4_prepare.py",
    "choose": "pages/5_choose.py",
    "train": "pages/6_train.py",
    "evaluate": "pages/7_evaluate.py",
    "chat_export": "pages/8_chat_export.py",
}
STEP_ICONS = {"define": "🎯", "upload": "📤", "analyze": "🔍", "prepare": "🧹", "choose": "🧭", "train": "🏋️",
              "evaluate": "📊", "chat_export": "💬"}


def ensure_shell() -> None:
    """Make sure app.py (sidebar, navigation, error wrapper) runs around this page.

    Streamlit still has its legacy "pages/ folder" mode: on a process's first run (and on every AppTest run) it
    may execute a file of pages/ on its own, without app.py. st.navigation turns that mode off; when a page
    finds it still on, app.py did not run, so we turn it off and rerun through app.py.
    """
    from streamlit.runtime.pages_manager import PagesManager

    if PagesManager.uses_pages_directory:
        PagesManager.uses_pages_directory = False
        st.rerun()


def show_error(exc: BaseException) -> None:
    """A friendly message for an exception: the engine's own words for bad input, a short note otherwise."""
    if isinstance(exc, UserError):
        st.error(str(exc), icon="⚠️")
        return
    log.exception("page error", exc_info=exc)
    st.error(t("error.unexpected"), icon="🛠️")
    with st.expander(t("error.details")):
        st.code(f"{type(exc).__name__}: {exc}", language=None)


def guarded(func: Callable) -> Callable:
    """Wrap a fragment body so its exceptions also become friendly messages (fragments rerun on their own)."""
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - control-flow exceptions are BaseException and pass through
            show_error(exc)
    wrapper.__name__ = func.__name__
    wrapper.__doc__ = func.__doc__
    return wrapper


def engine(module: str, attr: Optional[str] = None) -> Any:
    """An engine module or attribute, or None when that part of ``core`` is not built yet."""
    try:
        mod = importlib.import_module(module)
    except ModuleNotFoundError as exc:
        if exc.name and (exc.name == module or module.startswith(exc.name + ".") or exc.name.startswith("core")):
            return None
        raise
    except ImportError:
        return None
    return getattr(mod, attr, None) if attr else mod


def not_available(what: str) -> None:
    """Say that a part of the engine is missing instead of faking it."""
    st.info(t("common.not_available", what=what), icon="🚧")


def header(step: str) -> dict:
    """Title and intro of a step page; returns the saved project."""
    number = STEPS.index(step) + 1
    st.title(f"{STEP_ICONS[step]} {number} · {t(f'step.{step}')}")
    st.caption(t(f"{step}.intro"))
    return load_project()


def next_step(step: str) -> None:
    """A link to the following step."""
    i = STEPS.index(step)
    if i + 1 < len(STEPS):
        nxt = STEPS[i + 1]
        st.page_link(STEP_PAGES[nxt], label=t("common.next", step=t(f"step.{nxt}")), icon="➡️")


def need(condition: bool, message_key: str, step: str) -> bool:
    """Show a hint with a link when a previous step is missing; returns ``condition``."""
    if not condition:
        st.warning(t(message_key), icon="👈")
        st.page_link(STEP_PAGES[step], label=t("common.go_to", step=t(f"step.{step}")), icon="↩️")
    return condition
