"""A preference (DPO/ORPO) run's evaluation report on the Evaluate page: held-out pair accuracy of base and tuned,
the log-prob margins behind it, free-generation samples side by side, and speed (core/evaluation/pairs.py)."""
from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from core.data.pairs import messages_text
from core.fileio import read_json
from core.workspace import run_dir
from ui.common import chart_layout
from ui.evalview import BASE_COLOR, TUNED_COLOR, fmt_num, speed_section, weights_note
from ui.i18n import t

# The figures pair_accuracy returns per model, in table order (their names: evaluate.pairs.fig.<key>).
PAIR_FIGURES = ("accuracy", "mean_margin", "logp_chosen", "logp_rejected")
SAMPLE_COLUMNS = ("prompt", "chosen", "rejected", "base", "tuned")


def is_preference_run(run_id: str) -> bool:
    """Whether the run trains on preference pairs (objective dpo or orpo in its config.json)."""
    cfg = read_json(run_dir(run_id) / "config.json", None)
    return isinstance(cfg, dict) and (cfg.get("objective") or "sft") != "sft"


def percent(value: Any) -> str:
    """A share as a percentage with one decimal ("—" when missing)."""
    return f"{value:.1%}" if isinstance(value, (int, float)) else "—"


def render_pairs(report: dict[str, Any]) -> None:
    """Pair accuracy base vs tuned as metric cards, then tabs: the figures, the samples, the speed."""
    pairs = report["pairs"]
    base, tuned = pairs.get("base") or {}, pairs.get("tuned") or {}
    st.caption(t("evaluate.pairs.summary", n=tuned.get("n", "?"), objective=str(report.get("objective")).upper(),
                 seconds=report.get("seconds") or 0, created=report.get("created", "")))
    weights_note(report)
    c1, c2, c3 = st.columns(3)
    c1.metric(t("evaluate.pairs.acc_base"), percent(base.get("accuracy")))
    gain = pairs.get("accuracy_gain")
    c2.metric(t("evaluate.pairs.acc_tuned"), percent(tuned.get("accuracy")),
              None if gain is None else f"{gain * 100:+.1f} {t('evaluate.pairs.points')}")
    margin, base_margin = tuned.get("mean_margin"), base.get("mean_margin")
    c3.metric(t("evaluate.pairs.fig.mean_margin"), fmt_num(margin, 2),
              f"{margin - base_margin:+.2f} {t('evaluate.vs_base')}" if None not in (margin, base_margin) else None)
    st.caption(t("evaluate.pairs.explain", n=tuned.get("n", "?")))
    if tuned.get("dropped"):
        st.caption(t("evaluate.pairs.dropped", n=tuned["dropped"]))
    tabs = st.tabs([t("evaluate.tab.pairs"), t("evaluate.tab.samples"), t("evaluate.tab.speed")])
    with tabs[0]:
        _figures(base, tuned)
    with tabs[1]:
        _samples(pairs.get("samples") or [])
    with tabs[2]:
        speed_section(report.get("performance") or [])


def _figures(base: dict, tuned: dict) -> None:
    import plotly.graph_objects as go

    rows = [{t("evaluate.col.metric"): t(f"evaluate.pairs.fig.{k}"), t("evaluate.col.base"): base.get(k),
             t("evaluate.col.tuned"): tuned.get(k),
             t("evaluate.col.change"): tuned[k] - base[k] if k in base and k in tuned else None}
            for k in PAIR_FIGURES]
    st.dataframe(pd.DataFrame(rows), width="stretch", hide_index=True)
    fig = go.Figure(go.Bar(x=[t("evaluate.col.base"), t("evaluate.col.tuned")],
                           y=[base.get("accuracy"), tuned.get("accuracy")], marker_color=[BASE_COLOR, TUNED_COLOR]))
    fig.add_hline(y=0.5, line_dash="dash", annotation_text=t("evaluate.pairs.coin_flip"))
    chart_layout(fig, t("evaluate.pairs.chart"), 320, yaxis_range=[0, 1])
    st.plotly_chart(fig, width="stretch", key="eval_pairs")


def _samples(samples: list[dict]) -> None:
    if not samples:
        st.caption(t("evaluate.section_empty"))
        return
    st.caption(t("evaluate.pairs.samples_note"))
    st.dataframe(pd.DataFrame([{t(f"evaluate.pairs.col.{c}"): messages_text(s.get(c)) for c in SAMPLE_COLUMNS}
                               for s in samples]), width="stretch", hide_index=True)
