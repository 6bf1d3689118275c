"""Run the DataQualityAnalyzer on the current upload (result kept next to it) and show the report."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import streamlit as st

from core.runs import atomic_write_json, read_json
from ui.i18n import t


def _report_path(upload: dict, model: str, max_seq_len: int) -> Path:
    key = json.dumps([upload.get("format"), upload.get("mapping"), model, max_seq_len], sort_keys=True)
    digest = hashlib.sha256(key.encode()).hexdigest()[:8]
    return Path(upload["path"]).with_name(Path(upload["path"]).name + f".quality-{digest}.json")


def cached_report(upload: dict, model: str, max_seq_len: int) -> Optional[dict]:
    """The report saved by an earlier analysis of the same file and settings."""
    return read_json(_report_path(upload, model, max_seq_len), None)


def _to_dict(obj: Any) -> dict:
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    import dataclasses

    return dataclasses.asdict(obj)


def run_analysis(upload: dict, model: str, max_seq_len: int) -> dict:
    """Normalise the upload and analyse it with the base model's tokenizer; saves the report beside the upload."""
    from core.data import DataQualityAnalyzer, load_conversations
    from core.models import load_tokenizer

    convs, info = load_conversations(upload["path"], format=upload.get("format"), mapping=upload.get("mapping"))
    tok = load_tokenizer(model)
    report = _to_dict(DataQualityAnalyzer(tokenizer=tok, max_seq_len=max_seq_len).analyze(convs))
    report.setdefault("info", info)
    atomic_write_json(_report_path(upload, model, max_seq_len), report)
    return report


def render_quality(report: dict, upload: dict) -> None:
    """Score, findings (each with affected rows one click away) and charts."""
    score = report.get("score")
    findings = report.get("findings") or report.get("deductions") or []
    c1, c2, c3 = st.columns(3)
    c1.metric(t("analyze.score"), f"{score:.0f} / 100" if isinstance(score, (int, float)) else "—")
    c2.metric(t("analyze.rows"), f"{report.get('rows', report.get('info', {}).get('rows', '—'))}")
    c3.metric(t("analyze.findings"), len(findings))
    st.subheader(t("analyze.findings_title"))
    if not findings:
        st.success(t("analyze.clean"), icon="✨")
    for i, f in enumerate(findings):
        title = f.get("message") or f.get("cause") or f.get("check", "?")
        points = f.get("points") or f.get("deduction")
        with st.expander(f"{'−' + str(points) if points else '•'}  {title}", expanded=i < 2):
            if f.get("fix"):
                st.markdown(f"**{t('analyze.fix')}:** {f['fix']}")
            rows = f.get("rows") or f.get("row_ids") or []
            if rows:
                st.caption(t("analyze.affected", n=len(rows)))
                st.dataframe(pd.DataFrame({"row": rows[:500]}), hide_index=True, use_container_width=True)
    st.subheader(t("analyze.charts_title"))
    with st.expander(t("analyze.raw")):
        st.json(report, expanded=False)
