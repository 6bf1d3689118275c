"""Show a quality report: score, findings (translated from their codes) with affected rows, and charts."""
from __future__ import annotations

import pandas as pd
import streamlit as st

from core.data.findings import render_finding, render_note
from ui.i18n import t


def finding_text(finding: dict) -> tuple[str, str]:
    """(cause, fix) of a finding in the session's language; reports made before codes existed show their text."""
    if finding.get("code"):
        return render_finding(finding["code"], finding.get("params") or {}, t)
    return finding.get("cause", finding.get("check", "?")), finding.get("fix", "")


def _affected_rows(upload: dict, rows: list) -> pd.DataFrame:
    """The source rows a finding names (1-based row numbers of the uploaded file)."""
    from core.data.analysis import source_rows

    picked = source_rows(upload["path"], rows)
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
    for item in report.get("notes") or []:
        st.caption(f"ℹ️ {render_note(item, t)}")
    st.subheader(t("analyze.findings_title"))
    if not findings:
        st.success(t("analyze.clean"), icon="✨")
    for i, f in enumerate(findings):
        cause, fix = finding_text(f)
        with st.expander(f"−{f.get('points', 0)} · {cause}", expanded=i == 0):
            st.markdown(f"**{t('analyze.fix')}:** {fix}")
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
    """(key, plotly figure) for token lengths, script mix, label balance and personal data, as available."""
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
    scripts = (checks.get("script") or {}).get("counts") or {}
    if scripts:
        fig = go.Figure(go.Pie(labels=[t(f"analyze.script.{k}") for k in scripts], values=list(scripts.values()),
                               hole=0.5))
        figs.append(("script", _style(fig, t("analyze.chart.script"))))
    labels = (checks.get("labels") or {}).get("counts") or {}
    if labels:
        fig = go.Figure(go.Bar(x=list(labels), y=list(labels.values()), marker_color="#10B981"))
        figs.append(("labels", _style(fig, t("analyze.chart.labels"))))
    pii = (checks.get("pii") or {}).get("by_kind") or {}
    if pii:
        fig = go.Figure(go.Bar(x=[t(f"analyze.pii.{k}") for k in pii], y=list(pii.values()), marker_color="#F59E0B"))
        figs.append(("pii", _style(fig, t("analyze.chart.pii"))))
    return figs


def _style(fig, title: str, xaxis: str | None = None):
    import plotly.graph_objects as go

    fig.update_layout(title=title, height=320, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      showlegend=isinstance(fig.data[0], go.Pie), xaxis_title=xaxis)
    return fig
