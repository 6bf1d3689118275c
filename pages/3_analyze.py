"""Step 3 · Analyze: the quality score, every finding with its affected rows, and charts of the data."""
from pathlib import Path

import streamlit as st

from ui import t, update_project
from core.data import analysis
from ui.common import ensure_shell, header, need, next_step
from ui.data_kind_view import render_kind_summary
from ui.quality_view import render_quality

ensure_shell()

project = header("analyze")
upload = project.get("upload")
if not need(bool(upload) and Path(upload["path"]).exists(), "analyze.need_upload", "upload"):
    st.stop()

st.caption(t("analyze.source", name=upload["display_name"], model=project["base_model"]))
c1, c2 = st.columns([1, 3])
max_seq_len = c1.number_input(t("analyze.max_seq_len"), 32, 8192, 512, step=32, help=t("analyze.max_seq_len_help"))
settings = {"format": upload.get("format"), "mapping": upload.get("mapping"), "model": project["base_model"],
            "max_seq_len": int(max_seq_len)}
report = analysis.cached_upload_report(upload["path"], **settings)
if report is None or c2.button(t("analyze.rerun"), key="rerun"):
    with st.status(t("analyze.running"), expanded=False) as box:
        report = analysis.analyze_upload_cached(upload["path"], refresh=True, **settings)
        box.update(label=t("analyze.done"), state="complete")
if project.get("analyzed") != upload["path"]:
    project = update_project(analyzed=upload["path"])
render_kind_summary(report)
render_quality(report, upload)
next_step("analyze")
