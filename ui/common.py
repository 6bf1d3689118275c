"""Streamlit helpers used by every page: the shell check, header, friendly errors, links, durations."""
from __future__ import annotations

import functools
import logging
from typing import Callable, Optional

import streamlit as st

from core.errors import UserError
from core.project import STEPS, load_project
from ui.i18n import lang, t

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
STEP_ICONS = {"define": "🎯", "upload": "📤", "analyze": "🔍", "prepare": "🧹", "choose": "🧭",
              "train": "🏋️", "evaluate": "📊", "chat_export": "💬"}


def ensure_shell() -> None:
    """Run the app around this page when app.py did not (Streamlit's legacy pages/ mode, see ui.shell).

    app.py marks each run in which it drew the shell; without the mark the page hands over to the app, which runs
    this page inside the shell, and stops the outer run.
    """
    from ui.shell import SHELL_DRAWN, run_app  # ui.shell imports this module

    if not st.session_state.pop(SHELL_DRAWN, False):
        run_app()
        st.stop()


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
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except Exception as exc:  # noqa: BLE001 - control-flow exceptions are BaseException and pass through
            show_error(exc)
    return wrapper


def duration(seconds: Optional[float]) -> str:
    """``m:ss`` or ``h:mm:ss`` (``—`` when unknown): the one way the app writes a duration."""
    if seconds is None:
        return "—"
    seconds = max(0, int(round(seconds)))
    hours, rest = divmod(seconds, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60}:{rest % 60:02d}"


def lang_query() -> dict:
    """Query parameters that keep the session's language on a link (none for English, the default)."""
    code = lang()
    return {"lang": code} if code != "en" else {}


def page_link(step: str, label: str, icon: Optional[str] = None) -> None:
    """``st.page_link`` to a step's page that keeps the language in the URL."""
    st.page_link(STEP_PAGES[step], label=label, icon=icon, query_params=lang_query())


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
        page_link(nxt, t("common.next", step=t(f"step.{nxt}")), icon="➡️")


def need(condition: bool, message_key: str, step: str) -> bool:
    """Show a hint with a link when a previous step is missing; returns ``condition``."""
    if not condition:
        st.warning(t(message_key), icon="👈")
        page_link(step, t("common.go_to", step=t(f"step.{step}")), icon="↩️")
    return condition


CHART_TOP_PX = 72  # room above the plot: Streamlit's chart toolbar (top right), then the title below it


def layout(title: str, height: int = 300, **extra) -> dict:
    """The app's plotly layout: the title left-aligned below Streamlit's chart toolbar, the plot under the title."""
    return {"title": {"text": title, "x": 0.01, "xanchor": "left", "xref": "container", "y": 1, "yanchor": "top",
                      "yref": "container", "pad": {"t": 34}},
            "height": height, "margin": {"l": 10, "r": 10, "t": CHART_TOP_PX, "b": 10}, **extra}


def chart_layout(fig, title: str, height: int = 300, **extra):
    """Apply ``layout`` to an existing figure."""
    fig.update_layout(**layout(title, height, **extra))
    return fig


def figure(traces: list, title: str, height: int = 300, **extra):
    """A plotly figure with the app's layout, built in one go (a tenth of the CPU of update_layout: the live
    Train view rebuilds its charts at every step)."""
    import plotly.graph_objects as go

    return go.Figure(data=traces, layout=layout(title, height, **extra))
