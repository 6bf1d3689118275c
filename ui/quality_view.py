"""Run the DataQualityAnalyzer on the current upload (result kept next to it) and show the report."""
from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any, Optional

import pandas as pd
import streamlit as st

from core.fileio import atomic_write_json, read_json
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
    report = _to_dict(DataQualityAnalyzer(tokenizer=tok, max_seq_len=max_seq_len).analyze(convs, info))
    report.setdefault("info", info)
    atomic_write_json(_report_path(upload, model, max_seq_len), report)
    return report


def _affected_rows(upload: dict, rows: list) -> pd.DataFrame:
    """The source rows a finding names (1-based row numbers of the uploaded file)."""
    from core.data.io import read_table

    records = read_table(upload["path"]).records
    picked = [{"row": r, **{k: str(v)[:300] for k, v in records[r - 1].items()}} for r in rows
              if isinstance(r, int) and 0 < r <= len(records)]
    return pd.DataFrame(picked) if picked else pd.DataFrame({"row": rows})


def render_quality(report: dict, upload: dict) -> None:
    """Score, findings (each with affected rows one click away) and charts."""
    score = report.get("score")
    findings = report.get("deductions") or []
    checks = report.get("checks") or {}
    c1, c2, c3, c4 = st.columns(4)
    c1.metric(t("analyze.score"), f"{score:.0f} / 100" if isinstance(score, (int, float)) else "—")
    c2.metric(t("analyze.rows"), f"{report.get('rows', 0):,}")
    c3.metric(t("analyze.findings"), len(findings))
    c4.metric(t("analyze.format"), report.get("format") or "?", help=t(f"format.{report.get('format') or '?'}"))
    if isinstance(score, (int, float)):
        st.progress(max(0.0, min(1.0, score / 100)))
    for note in report.get("notes") or []:
        st.caption(f"ℹ️ {note}")
    st.subheader(t("analyze.findings_title"))
    if not findings:
        st.success(t("analyze.clean"), icon="✨")
    for i, f in enumerate(findings):
        with st.expander(f"−{f.get('points', 0)} · {f.get('cause', f.get('check', '?'))}", expanded=i == 0):
            st.markdown(f"**{t('analyze.fix')}:** {f.get('fix', '')}")
            rows = f.get("rows") or []
            st.caption(t("analyze.affected", n=f.get("count", len(rows)), shown=len(rows)))
            if rows and st.toggle(t("analyze.show_rows"), key=f"rows_{i}_{f.get('check')}"):
                st.dataframe(_affected_rows(upload, rows), hide_index=True, width="stretch")
    st.subheader(t("analyze.charts_title"))
    figures = quality_figures(report)
    for start in range(0, len(figures), 2):
        cols = st.columns(2)
        for col, (key, fig) in zip(cols, figures[start:start + 2]):
            col.plotly_chart(fig, width="stretch", key=f"q_{key}")
    with st.expander(t("analyze.raw")):
        st.json(checks, expanded=False)


def quality_figures(report: dict) -> list:
    """(key, plotly figure) for token lengths, language mix, label balance and personal data, as available."""
    import plotly.graph_objects as go

    checks = report.get("checks") or {}
    figs = []
    hist = (checks.get("lengths") or {}).get("histogram")
    if hist and hist.get("counts"):
        edges = hist["edges"]
        mids = [(a + b) / 2 for a, b in zip(edges[:-1], edges[1:])]
        fig = go.Figure(go.Bar(x=mids, y=hist["counts"], marker_color="#4F46E5",
                               width=[(b - a) * 0.95 for a, b in zip(edges[:-1], edges[1:])]))
        limit = report.get("max_seq_len")
        if limit and limit <= edges[-1] * 1.5:
            fig.add_vline(x=limit, line_dash="dash", line_color="#DC2626",
                          annotation_text=f"max_seq_len {limit}")
        figs.append(("lengths", _style(fig, t("analyze.chart.lengths"), t("analyze.chart.tokens"))))
    langs = (checks.get("languages") or {}).get("counts") or {}
    if langs:
        fig = go.Figure(go.Pie(labels=[t(f"analyze.lang.{k}") for k in langs], values=list(langs.values()), hole=0.5))
        figs.append(("languages", _style(fig, t("analyze.chart.languages"))))
    labels = (checks.get("labels") or {}).get("counts") or {}
    if labels:
        fig = go.Figure(go.Bar(x=list(labels), y=list(labels.values()), marker_color="#10B981"))
        figs.append(("labels", _style(fig, t("analyze.chart.labels"))))
    pii = (checks.get("pii") or {}).get("by_kind") or {}
    if pii:
        fig = go.Figure(go.Bar(x=list(pii), y=list(pii.values()), marker_color="#F59E0B"))
        figs.append(("pii", _style(fig, t("analyze.chart.pii"))))
    return figs


def _style(fig, title: str, xaxis: str | None = None):
    import plotly.graph_objects as go

    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      showlegend=isinstance(fig.data[0], go.Pie), xaxis_title=xaxis)
    return fig
