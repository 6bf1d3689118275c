"""Show an evaluation report (runs/<id>/eval/report.json): metrics base vs tuned, errors, robustness, speed."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from ui.i18n import t


def _metric_table(metrics: dict[str, Any]) -> pd.DataFrame | None:
    """{"base": {m: v}, "tuned": {m: v}} → rows per metric with base, tuned and the change."""
    base, tuned = metrics.get("base") or {}, metrics.get("tuned") or {}
    names = [k for k in tuned if isinstance(tuned.get(k), (int, float)) and not isinstance(tuned.get(k), bool)]
    if not names:
        return None
    rows = []
    for name in names:
        b = base.get(name)
        rows.append({t("evaluate.col.metric"): name, t("evaluate.col.base"): b, t("evaluate.col.tuned"): tuned[name],
                     t("evaluate.col.change"): (tuned[name] - b) if isinstance(b, (int, float)) else None})
    return pd.DataFrame(rows)


def render_report(report: dict[str, Any]) -> None:
    """All sections the report has, each in its own tab."""
    import plotly.graph_objects as go

    metrics = report.get("metrics") or {}
    table = _metric_table(metrics) if isinstance(metrics, dict) else None
    tabs = st.tabs([t("evaluate.tab.metrics"), t("evaluate.tab.errors"), t("evaluate.tab.robustness"),
                    t("evaluate.tab.speed"), t("evaluate.tab.samples")])
    with tabs[0]:
        if table is not None:
            st.dataframe(table, use_container_width=True, hide_index=True)
            fig = go.Figure([go.Bar(name=t("evaluate.col.base"), x=table.iloc[:, 0], y=table.iloc[:, 1]),
                             go.Bar(name=t("evaluate.col.tuned"), x=table.iloc[:, 0], y=table.iloc[:, 2])])
            fig.update_layout(barmode="group", height=340, margin={"t": 20})
            st.plotly_chart(fig, use_container_width=True)
        else:
            st.json(metrics, expanded=False)
    with tabs[1]:
        _section(report.get("errors"))
    with tabs[2]:
        _section(report.get("robustness"))
    with tabs[3]:
        _section(report.get("performance") or report.get("speed"))
    with tabs[4]:
        _section(report.get("samples") or report.get("examples"))


def _section(data: Any) -> None:
    """A list of records as a table, a dict of scalars as metrics, anything else as JSON."""
    if not data:
        st.caption(t("evaluate.section_empty"))
    elif isinstance(data, list) and all(isinstance(r, dict) for r in data):
        st.dataframe(pd.DataFrame(data), use_container_width=True, hide_index=True)
    else:
        st.json(data, expanded=False)
