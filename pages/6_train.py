"""Step 6 · Train: start a run (a separate process), live curves, progress with ETA, Stop and Resume.

Everything shown comes from the run folder (status.json, metrics.jsonl, train.log), so a reload or a
second tab sees the same run. While a run trains, a fragment looks at the two files' size and mtime every
couple of seconds and rebuilds the charts only when they changed: the app costs the trainer no CPU.
"""
import streamlit as st

from core import runs
from core.checkpoints import usable_weights
from core.defaults import ACTIVE_STATES
from core.run_config import build_run_config
from core.workspace import list_ids
from ui import t, update_project
from ui.common import ensure_shell, guarded, header, need, next_step, page_link
from ui.runview import (curves, eval_progress, live_stamp, log_tail, metrics, note_text, preference_curves,
                        progress_text, run_status, slow_text)

LIVE_EVERY_S = 2.0

ensure_shell()

project = header("train")
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
if c1.button(t("train.start"), type="primary", disabled=busy, key="start", help=t("train.busy") if busy else None):
    with st.spinner(t("train.starting")):
        run_id = runs.launch(config)
    project = update_project(active_run=run_id)
    st.rerun()
if busy:
    c2.caption(t("train.busy"))

if not active:
    st.info(t("train.no_run"), icon="🏁")
    st.stop()


def controls(run_id: str, state: str) -> None:
    """Stop while running; Resume when stopped or failed."""
    c1, c2, _ = st.columns([1, 1, 4])
    if state in ("running", "queued") and c1.button(t("train.stop"), key=f"stop_{run_id}"):
        runs.stop(run_id)
        st.toast(t("train.stopping"), icon="⏹️")
    if state in ("stopped", "failed") and c2.button(t("train.resume"), key=f"resume_{run_id}", type="primary"):
        runs.resume(run_id)
        st.rerun()


def status_lines(run_id: str, status: dict, rows: list) -> None:
    """State, progress with ETA, validation progress, the trainer's notes and a slow-steps warning."""
    state = status.get("state", "unknown")
    st.markdown(f"**{t('train.state')}:** {t(f'state.{state}')}")
    total, step = status.get("total_steps") or 0, status.get("step") or 0
    st.progress(min(1.0, step / total) if total else 0.0, text=progress_text(status, rows))
    validating = eval_progress(status) if state in ACTIVE_STATES else None
    if validating:
        st.progress(validating[0], text=validating[1])
    for note in status.get("notes") or []:
        st.info(note_text(note), icon="📝")
    slow = slow_text(status.get("slow")) if state in ACTIVE_STATES else None
    if slow:
        st.warning(slow, icon="🐢")


def charts(run_id: str, figures: dict, state: str) -> None:
    """The loss, learning-rate and speed curves side by side."""
    if figures:
        for col, (key, fig) in zip(st.columns(len(figures)), figures.items()):
            col.plotly_chart(fig, width="stretch", key=f"chart_{key}_{run_id}")
    elif state in ACTIVE_STATES:
        st.caption(t("train.waiting_metrics"))


def preference_charts(run_id: str, figures: dict) -> None:
    """DPO/ORPO runs: the reward and log-prob curves side by side (built by ``preference_curves``)."""
    for col, (key, fig) in zip(st.columns(len(figures)) if figures else [], figures.items()):
        col.plotly_chart(fig, width="stretch", key=f"pref_{key}_{run_id}")


def ended(run_id: str, status: dict) -> None:
    """What a finished, stopped, failed or damaged run offers."""
    state = status.get("state", "unknown")
    if state == "damaged":
        st.error(t("train.damaged", reason=status.get("error") or t("train.no_reason")), icon="🧨")
    if state == "failed":
        st.error(t("train.failed", reason=status.get("error") or t("train.no_reason")), icon="💥")
        st.code(log_tail(run_id), language=None)
    if state == "completed":
        st.success(t("train.completed"), icon="🎉")
    weights = usable_weights(run_id) if state in ("stopped", "failed", "damaged") else None
    if weights is not None:
        st.info(t("train.checkpoint_usable", step=weights.step, total=weights.total_steps or "?"), icon="💾")
        c1, c2 = st.columns(2)
        with c1:
            page_link("evaluate", t("train.evaluate_checkpoint", step=weights.step), icon="📊")
        with c2:
            page_link("chat_export", t("train.chat_checkpoint", step=weights.step), icon="💬")


def _snapshot(run_id: str, stamp: tuple, old: dict | None) -> dict:
    """Status, progress text and figures for one state of the run's files; metrics.jsonl is read and the figures
    rebuilt only when that file changed (status.json alone changes during validation and on the clock tick)."""
    status = run_status(run_id)
    metrics_stamp = stamp[0][1]
    if old is not None and old["metrics_stamp"] == metrics_stamp:
        rows, figures, pref = old["rows"], old["figures"], old["pref_figures"]
    else:
        rows = metrics(run_id)
        figures, pref = curves(rows), preference_curves(rows)
    return {"stamp": stamp, "metrics_stamp": metrics_stamp, "status": status, "rows": rows, "figures": figures,
            "pref_figures": pref}


@st.fragment(run_every=LIVE_EVERY_S)
@guarded
def live(run_id: str) -> None:
    """Every couple of seconds: two stat() calls; the files are read and the charts rebuilt only when they changed.
    A full rerun once the run ends stops the polling."""
    stamp = live_stamp(run_id)
    key = f"_train_live_{run_id}"
    snap = st.session_state.get(key)
    if snap is None or snap["stamp"] != stamp:
        snap = st.session_state[key] = _snapshot(run_id, stamp, snap)
    if snap["status"].get("state") not in ACTIVE_STATES:
        st.session_state.pop(key, None)
        st.rerun(scope="app")
    status_lines(run_id, snap["status"], snap["rows"])
    controls(run_id, snap["status"].get("state", "unknown"))
    charts(run_id, snap["figures"], snap["status"].get("state", "unknown"))
    preference_charts(run_id, snap["pref_figures"])


st.subheader(t("train.run_title", id=active))
if current and current.get("state") in ACTIVE_STATES:
    live(active)
else:
    rows = metrics(active)
    status_lines(active, current, rows)
    controls(active, current.get("state", "unknown"))
    ended(active, current)
    charts(active, curves(rows), current.get("state", "unknown"))
    preference_charts(active, preference_curves(rows))
    if current.get("state") == "completed":
        next_step("train")
with st.expander(t("train.log")):
    st.code(log_tail(active, 40), language=None)
