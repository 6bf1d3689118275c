"""Step 7 · Evaluate: the evaluation report of a run — metrics base vs tuned, errors, robustness, speed."""
import streamlit as st

from core.runs import read_json, run_dir
from ui import t
from ui.common import ensure_shell, engine, header, need, next_step, not_available
from ui.evalview import render_report
from ui.runview import run_status

ensure_shell()

project = header("evaluate")
run_id = project.get("active_run")
if not need(bool(run_id) and run_dir(run_id).exists(), "evaluate.need_run", "train"):
    st.stop()
if not need(run_status(run_id).get("state") == "completed", "evaluate.need_completed", "train"):
    st.stop()

evaluate_run = engine("core.evaluation", "evaluate_run")
report_path = run_dir(run_id) / "eval" / "report.json"
report = read_json(report_path, None)

with st.form("evaluate"):
    c1, c2 = st.columns([1, 3])
    limit = c1.number_input(t("evaluate.limit"), 0, 100_000, 20 if report is None else 0, help=t("evaluate.limit_help"))
    c2.caption(t("evaluate.explain"))
    go = st.form_submit_button(t("evaluate.run" if report is None else "evaluate.rerun"), type="primary",
                               disabled=evaluate_run is None)
if evaluate_run is None:
    not_available(t("evaluate.engine"))
elif go:
    bar = st.progress(0.0, text=t("evaluate.running"))

    def progress(fraction: float, message: str = "") -> None:
        bar.progress(max(0.0, min(1.0, float(fraction))), text=f"{t('evaluate.running')} {message}")

    report = evaluate_run(run_id, limit=int(limit) or None, progress=progress)
    bar.progress(1.0, text=t("evaluate.done"))

if report:
    render_report(report)
    next_step("evaluate")
elif evaluate_run is not None:
    st.info(t("evaluate.none_yet"), icon="🧪")
