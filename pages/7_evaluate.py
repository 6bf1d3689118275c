"""Step 7 · Evaluate: the evaluation report of a run — metrics base vs tuned, errors, robustness, speed — and the
release gate with its checks (forgetting, abstention, leaks, causes, baselines, learning curve). A preference
(DPO/ORPO) run shows held-out pair accuracy base vs tuned instead, and no checks (they read conversations).

Any run with usable weights can be evaluated: the final adapter, or a stopped or failed run's newest checkpoint
("as of step N"). The evaluation runs as its own process (``python -m core eval``): a reload or a click
elsewhere does not stop it.
"""
import streamlit as st

from core.evaluation.jobs import log_tail, start, state
from core.fileio import read_json
from core.workspace import run_dir
from ui import t
from ui.checksview import DEFAULT_CHECKS, check_label, render_checks
from ui.common import ensure_shell, guarded, header, need, next_step
from ui.evalview import render_report
from ui.pairsview import is_preference_run, render_pairs
from ui.runview import run_status, weights_panel

ensure_shell()

project = header("evaluate")
run_id = project.get("active_run")
if not need(bool(run_id) and run_dir(run_id).exists(), "evaluate.need_run", "train"):
    st.stop()
weights = weights_panel(run_id, run_status(run_id))
report = read_json(run_dir(run_id) / "eval" / "report.json", None)
job = state(run_id)
preference = is_preference_run(run_id)  # DPO/ORPO: pair accuracy; the gate's checks read conversations
running = job["state"] == "running"

if weights is not None:
    with st.form("evaluate"):
        c1, c2 = st.columns([1, 3])
        limit = c1.number_input(t("evaluate.limit"), 0, 100_000, 20, help=t("evaluate.limit_help"))
        c2.caption(t("evaluate.pairs.explain_run" if preference else "evaluate.explain"))
        if preference:
            checks = []
            c2.caption(t("evaluate.pairs.no_checks"))
        else:
            checks = c2.multiselect(t("evaluate.checks"), DEFAULT_CHECKS + ["curve"], DEFAULT_CHECKS,
                                    format_func=check_label, help=t("evaluate.checks_help"))
        go = st.form_submit_button(t("evaluate.run" if report is None else "evaluate.rerun"), type="primary",
                                   disabled=running)
    if go:
        start(run_id, int(limit) or None, list(checks))
        st.rerun()


@st.fragment(run_every=2)
@guarded
def progress_panel() -> None:
    """Polls the evaluation process; a full rerun once it ends shows the new report."""
    current = state(run_id)
    if current["state"] != "running":
        st.rerun(scope="app")
    st.progress(current["fraction"], text=f"{t('evaluate.running')} {current['message']}")


if running:
    progress_panel()
elif job["state"] == "failed":
    st.error(t("evaluate.failed"), icon="💥")
    st.code(log_tail(run_id), language=None)

if report and "pairs" in report:
    render_pairs(report)
    next_step("evaluate")
elif report:
    render_report(report)
    render_checks(report, run_id)
    next_step("evaluate")
elif weights is not None and not running:
    st.info(t("evaluate.none_yet"), icon="🧪")
