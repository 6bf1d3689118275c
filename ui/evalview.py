"""Show an evaluation report (runs/<id>/eval/report.json): metrics base vs tuned, errors, robustness, speed."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.evaluation.metrics import METRICS, row_code
from ui.common import chart_layout
from ui.i18n import t

BASE_COLOR, TUNED_COLOR = "#9CA3AF", "#4F46E5"


def fmt_num(value: Any, digits: int = 3) -> str:
    """A number with ``digits`` decimals ("—" when missing)."""
    return f"{value:.{digits}f}" if isinstance(value, (int, float)) else "—"


def headline(report: dict) -> list[dict]:
    """The two or three figures a stakeholder asks for first: task metric, validation loss, speed."""
    rows = {row_code(r): r for r in report.get("comparison") or []}
    picks = ["accuracy_scored", "accuracy_gen"] if report.get("task") == "classification" else ["token_f1", "rouge_l"]
    return [rows[k] for k in picks + ["val_loss"] if k in rows]


def metric_name(row: dict) -> str:
    """A comparison row's metric in the session's language (the report's English name for an unknown code)."""
    code = row_code(row)
    return t(f"metric.{code}") if code in METRICS else str(row.get("metric"))


def weights_note(report: dict) -> None:
    """Says so when the report evaluated a stopped run's checkpoint rather than its final weights."""
    weights = report.get("weights") or {}
    if weights and not weights.get("final"):
        st.info(t("evaluate.as_of", step=weights.get("step"), total=weights.get("total_steps") or "?"), icon="💾")


def render_report(report: dict[str, Any]) -> None:
    """Headline metrics, then one tab per section of the report."""
    st.caption(t("evaluate.summary", n=report.get("n_test", "?"), task=report.get("task", "?"),
                 seconds=report.get("seconds") or 0, created=report.get("created", "")))
    weights_note(report)
    cols = st.columns(max(1, len(headline(report))))
    for col, row in zip(cols, headline(report)):
        delta = row["delta"]
        col.metric(metric_name(row), fmt_num(row["tuned"]), f"{delta:+.3f} {t('evaluate.vs_base')}",
                   delta_color="normal" if row.get("higher_is_better") is not False else "inverse")
    tabs = st.tabs([t("evaluate.tab.metrics"), t("evaluate.tab.samples"), t("evaluate.tab.errors"),
                    t("evaluate.tab.robustness"), t("evaluate.tab.speed")])
    with tabs[0]:
        _metrics(report)
    with tabs[1]:
        _samples(report)
    with tabs[2]:
        _errors(report)
    with tabs[3]:
        _robustness(report.get("robustness"))
    with tabs[4]:
        speed_section(report.get("performance") or [])


def _metrics(report: dict) -> None:
    import plotly.graph_objects as go

    rows = report.get("comparison") or []
    if not rows:
        st.caption(t("evaluate.section_empty"))
        return
    table = pd.DataFrame([{t("evaluate.col.metric"): metric_name(r), t("evaluate.col.base"): r["base"],
                           t("evaluate.col.tuned"): r["tuned"], t("evaluate.col.change"): r["delta"]} for r in rows])
    st.dataframe(table, width="stretch", hide_index=True)
    shares = [r for r in rows if METRICS.get(row_code(r), ("", None, False))[2]]
    if shares:
        fig = go.Figure([go.Bar(name=t("evaluate.col.base"), x=[metric_name(r) for r in shares],
                                y=[r["base"] for r in shares], marker_color=BASE_COLOR),
                         go.Bar(name=t("evaluate.col.tuned"), x=[metric_name(r) for r in shares],
                                y=[r["tuned"] for r in shares], marker_color=TUNED_COLOR)])
        chart_layout(fig, t("evaluate.chart.metrics"), 340, barmode="group", yaxis_range=[0, 1])
        st.plotly_chart(fig, width="stretch", key="eval_metrics")
    cls = ((report.get("tuned") or {}).get("metrics") or {}).get("classification")
    if cls and cls.get("confusion"):
        fig = go.Figure(go.Heatmap(z=cls["confusion"], x=cls.get("confusion_columns") or cls["labels"],
                                   y=cls["labels"], colorscale="Blues"))
        chart_layout(fig, t("evaluate.chart.confusion"), 420, xaxis_title=t("evaluate.predicted"),
                     yaxis_title=t("evaluate.gold"))
        st.plotly_chart(fig, width="stretch", key="eval_confusion")
    st.caption(t("evaluate.decoding", decoding=report.get("decoding")))


def _samples(report: dict) -> None:
    from core.evaluation.errors import ErrorAnalyzer

    base = (report.get("base") or {}).get("examples") or []
    tuned = (report.get("tuned") or {}).get("examples") or []
    rows = []
    for b, tu in list(zip(base, tuned))[:20]:
        summary = ErrorAnalyzer.summary(tu)
        rows.append({t("evaluate.col.prompt"): summary["prompt"], t("evaluate.col.reference"): summary["reference"],
                     t("evaluate.col.base"): b.get("answer"), t("evaluate.col.tuned"): tu.get("answer")})
    if rows:
        st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)
    else:
        st.caption(t("evaluate.section_empty"))


def _errors(report: dict) -> None:
    errors = report.get("errors") or {}
    base, tuned = errors.get("base") or {}, errors.get("tuned") or {}
    cats = tuned.get("categories") or {}
    if cats:
        st.dataframe(pd.DataFrame([{t("evaluate.col.category"): t(f"evaluate.err.{name}"),
                                    t("evaluate.col.base"): (base.get("categories") or {}).get(name, {}).get("count"),
                                    t("evaluate.col.tuned"): c.get("count")} for name, c in cats.items()]),
                     width="stretch", hide_index=True)
    pairs = tuned.get("confused_pairs") or []
    if pairs:
        st.markdown(f"**{t('evaluate.confused')}**")
        st.dataframe(pd.DataFrame(pairs), width="stretch", hide_index=True)
    for metric, examples in (tuned.get("worst") or {}).items():
        if examples:
            st.markdown(f"**{t('evaluate.worst', metric=metric)}**")
            st.dataframe(pd.DataFrame(examples), width="stretch", hide_index=True)
    if not cats and not pairs:
        st.caption(t("evaluate.section_empty"))


def _robustness(rob: dict | None) -> None:
    import plotly.graph_objects as go

    if not rob or not rob.get("perturbations"):
        st.caption(t("evaluate.section_empty"))
        return
    names = list(rob["perturbations"])
    fig = go.Figure([go.Bar(name=t("evaluate.rob.score", metric=rob.get("metric", "")), x=names,
                            y=[rob["perturbations"][n]["score"] for n in names], marker_color=TUNED_COLOR),
                     go.Bar(name=t("evaluate.rob.unchanged"), x=names,
                            y=[rob["perturbations"][n]["unchanged_share"] for n in names], marker_color="#10B981")])
    fig.add_hline(y=rob.get("clean") or 0, line_dash="dash", annotation_text=t("evaluate.rob.clean"))
    chart_layout(fig, t("evaluate.chart.robustness"), 340, barmode="group")
    st.plotly_chart(fig, width="stretch", key="eval_rob")
    st.dataframe(pd.DataFrame([{"perturbation": n, **{k: v for k, v in p.items() if k != "examples"}}
                               for n, p in rob["perturbations"].items()]), width="stretch", hide_index=True)


def speed_section(perf: list) -> None:
    """The speed table (base and tuned) and a tokens-per-second bar chart."""
    import plotly.graph_objects as go

    if not perf:
        st.caption(t("evaluate.section_empty"))
        return
    st.dataframe(pd.DataFrame(perf), width="stretch", hide_index=True)
    fig = go.Figure(go.Bar(x=[p["name"] for p in perf], y=[p.get("tokens_per_s") or 0 for p in perf],
                           marker_color=[BASE_COLOR] + [TUNED_COLOR] * (len(perf) - 1)))
    chart_layout(fig, t("evaluate.chart.speed"), 300)
    st.plotly_chart(fig, width="stretch", key="eval_speed")
