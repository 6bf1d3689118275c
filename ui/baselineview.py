"""The Choose page's "Baselines before training": the few-shot base model and the retrieval baseline on the
dataset's test split, computed by a background job (core.evaluation.pretrain_baselines), polled, then shown as the
bar tuning has to beat."""
from __future__ import annotations

import time
from typing import Optional

import streamlit as st

from core.data.kinds import dataset_kind
from core.defaults import DEFAULT_MODEL
from core.evaluation.baselines import FEW_SHOT_K
from core.evaluation import pretrain_baselines as pre
from core.workspace import dataset_dir
from ui.common import duration, guarded, show_error
from ui.i18n import t

DEFAULT_LIMIT = 50  # test examples: the few-shot baseline asks the base model once per example


def baselines_section(project: dict) -> None:
    """Start the job, follow it, show the stored result for this dataset, model and system prompt."""
    dataset = project["active_dataset"]
    if dataset_kind(dataset_dir(dataset)) != "chat":
        return  # preference pairs and documents have no answers to compare a baseline with
    model = project.get("base_model") or DEFAULT_MODEL
    system_prompt = project.get("system_prompt") or None
    st.subheader(t("baselines.title"))
    st.caption(t("baselines.explain", k=FEW_SHOT_K))
    job = pre.state(dataset)
    running = job["state"] == "running"
    with st.form("baselines"):
        limit = st.number_input(t("baselines.limit"), 0, 100_000, DEFAULT_LIMIT, help=t("baselines.limit_help"))
        go = st.form_submit_button(t("baselines.start"), disabled=running)
    if go:
        try:
            pre.start(dataset, model, system_prompt, int(limit) or None)
            st.rerun()
        except Exception as exc:  # noqa: BLE001 - shown; the page keeps working
            show_error(exc)
    if running:
        progress_panel(dataset)
    elif job["state"] == "failed":
        st.error(t("baselines.failed"), icon="💥")
        st.code(pre.log_tail(dataset), language=None)
    record = pre.stored(dataset, model, system_prompt)
    if record:
        show_result(record)
    elif not running:
        st.caption(t("baselines.none_yet", model=model))


@st.fragment(run_every=2)
@guarded
def progress_panel(dataset: str) -> None:
    """Polls the job: elapsed time, and the time left once the first answers give a rate; a full rerun at the end."""
    job = pre.state(dataset)
    if job["state"] != "running":
        st.rerun(scope="app")
    now = time.time()
    elapsed = now - float(job["started_at"]) if job.get("started_at") else None
    left: Optional[float] = pre.remaining_s(job, now)
    when = t("baselines.eta", elapsed=duration(elapsed), left=duration(left)) if left is not None else \
        t("baselines.eta_unknown", elapsed=duration(elapsed))
    st.progress(job["fraction"], text=f"{t('baselines.running')} {job['message']} · {when}")


def show_result(record: dict) -> None:
    """The two figures with the metric's name and the bar tuning has to beat."""
    base = record["result"]["base"]
    best, metric = pre.bar(record)
    c1, c2 = st.columns(2)
    if base.get("few_shot") is not None:
        c1.metric(t("baselines.few_shot", k=base.get("k")), f"{base['few_shot']:.3f}", metric, delta_color="off",
                  delta_arrow="off", border=True)
    c2.metric(t("baselines.retrieval"), f"{base['retrieval']:.3f}", metric, delta_color="off", delta_arrow="off",
              border=True)
    st.info(t("baselines.bar", score=best, metric=metric, n=record.get("n")), icon="🎯")
    if base.get("few_shot_n") and base["few_shot_n"] < (record.get("n") or 0):
        st.caption(t("baselines.few_shot_sample", asked=base["few_shot_n"], n=record.get("n")))
    st.caption(t("baselines.when", created=record.get("created", ""), model=record.get("model"),
                 seconds=record.get("seconds") or 0))
