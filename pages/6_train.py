"""Step 6 · Train: start a run (a separate process), live curves, progress with ETA, Stop and Resume.

Everything shown comes from the run folder (status.json, metrics.jsonl, train.log), so a reload or a
second tab sees the same run.
"""
import streamlit as st

from core.workspace import list_ids
from ui import t, update_project
from ui.common import ensure_shell, engine, guarded, header, need, next_step, not_available
from core.defaults import ACTIVE_STATES
from core.run_config import build_run_config
from ui.runview import curves, log_tail, progress_text, run_status

ensure_shell()

project = header("train")
runs_api = {name: engine("core.runs", name) for name in ("launch", "stop", "status", "resume")}

if not need(bool(project.get("run_config")), "train.need_config", "choose"):
    st.stop()

config = build_run_config(project)
with st.expander(t("train.config"), expanded=False):
    st.json(config, expanded=True)

active = project.get("active_run")
if active and active not in list_ids("runs"):
    active = None
current = run_status(active) if active else None
busy = bool(current and current.get("state") in ACTIVE_STATES)

c1, c2 = st.columns([1, 3])
if runs_api["launch"] is None:
    not_available(t("train.engine"))
elif c1.button(t("train.start"), type="primary", disabled=busy, key="start",
               help=t("train.busy") if busy else None):
    with st.spinner(t("train.starting")):
        run_id = runs_api["launch"](config)
    project = update_project(active_run=run_id)
    st.rerun()
if busy:
    c2.caption(t("train.busy"))

if not active:
    st.info(t("train.no_run"), icon="🏁")
    st.stop()


def controls(run_id: str, state: str) -> None:
    """Stop while running; Resume when stopped or failed (and a checkpoint may exist)."""
    c1, c2, _ = st.columns([1, 1, 4])
    if state in ("running", "queued") and runs_api["stop"] is not None:
        if c1.button(t("train.stop"), key=f"stop_{run_id}"):
            runs_api["stop"](run_id)
            st.toast(t("train.stopping"), icon="⏹️")
    if state in ("stopped", "failed"):
        if runs_api["resume"] is None:
            not_available(t("train.resume_engine"))
        elif c2.button(t("train.resume"), key=f"resume_{run_id}", type="primary"):
            runs_api["resume"](run_id)
            st.rerun()


def show_run(run_id: str) -> None:
    """Status, progress with ETA, curves, and the reason plus log tail of a failed run."""
    status = run_status(run_id)
    state = status.get("state", "unknown")
    st.subheader(t("train.run_title", id=run_id))
    detail = status.get("state_detail")  # e.g. "evaluating" between steps
    st.markdown(f"**{t('train.state')}:** {t(f'state.{state}')}" + (f" · {detail}" if detail and state in ACTIVE_STATES
                                                                    else ""))
    total = status.get("total_steps") or 0
    step = status.get("step") or 0
    st.progress(min(1.0, step / total) if total else 0.0, text=progress_text(run_id, status))
    controls(run_id, state)
    if state == "failed":
        st.error(t("train.failed", reason=status.get("error") or t("train.no_reason")), icon="💥")
        st.code(log_tail(run_id), language=None)
    figures = curves(run_id)
    if figures:
        cols = st.columns(len(figures))
        for col, (key, fig) in zip(cols, figures.items()):
            col.plotly_chart(fig, width="stretch", key=f"chart_{key}_{run_id}")
    elif state in ACTIVE_STATES:
        st.caption(t("train.waiting_metrics"))
    if state == "completed":
        st.success(t("train.completed"), icon="🎉")
    with st.expander(t("train.log")):
        st.code(log_tail(run_id, 40), language=None)


@st.fragment(run_every=4)
@guarded
def live(run_id: str) -> None:
    """Refreshed every 4 s while the run is active (a step takes seconds on a CPU, and every refresh redraws the
    charts on the same cores the trainer uses); a full rerun once it ends stops the polling."""
    if run_status(run_id).get("state") not in ACTIVE_STATES:
        st.rerun(scope="app")
    show_run(run_id)


if current and current.get("state") in ACTIVE_STATES:
    live(active)
else:
    show_run(active)
    if current and current.get("state") == "completed":
        next_step("train")
