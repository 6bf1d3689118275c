"""The evaluation report: ``report.json`` and a self-contained ``report.html``.

The HTML embeds plotly.js inline once (``include_plotlyjs=True`` on the first chart, none after), so it opens with
no network: no ``<script src>``, ``<link href>`` or ``<img src>`` points to another host. The plotly bundle itself
contains URL strings in its code (map tile servers, its CDN for optional MathJax/topojson); they are only used by
chart types this report does not draw.
"""
from __future__ import annotations

import html
import json
from pathlib import Path
from typing import Any, Optional

from core.fileio import atomic_write_json, atomic_write_text

_CSS = """
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;
vertical-align:top;text-align:left}th{background:#f4f4f4}.good{color:#18794e}.bad{color:#c62828}
.muted{color:#777;font-size:.85rem}pre{white-space:pre-wrap;margin:0;font-family:inherit}
"""


def _e(value: Any) -> str:
    return html.escape("" if value is None else str(value))


def _fmt(value: Any) -> str:
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return _e(value)


def _table(rows: list[dict], columns: Optional[list[str]] = None, pre: tuple = ()) -> str:
    if not rows:
        return "<p class='muted'>(none)</p>"
    columns = columns or list(rows[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    body = "".join("<tr>" + "".join(
        f"<td><pre>{_e(r.get(c))}</pre></td>" if c in pre else f"<td>{_fmt(r.get(c))}</td>" for c in columns)
        + "</tr>" for r in rows)
    return f"<table><tr>{head}</tr>{body}</table>"


class _Charts:
    """Turns plotly figures into HTML divs; the first one carries the inline plotly.js bundle."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> str:
        fig.update_layout(margin=dict(l=40, r=20, t=40, b=40), height=360)
        out = fig.to_html(full_html=False, include_plotlyjs=self.first, include_mathjax=False,
                          config={"displaylogo": False, "responsive": True})
        self.first = False
        return out


def _metric_rows(comparison: list[dict]) -> list[dict]:
    rows = []
    for r in comparison:
        better = r.get("higher_is_better")
        verdict = "" if better is None or r["delta"] == 0 else (
            "better" if (r["delta"] > 0) == bool(better) else "worse")
        rows.append({"metric": r["metric"], "base": r["base"], "tuned": r["tuned"], "delta": r["delta"],
                     "tuned is": verdict})
    return rows


def _section_quality(report: dict) -> str:
    q = report.get("data_quality")
    if not q:
        return "<p class='muted'>The run's data is not a prepared dataset; no quality report.</p>"
    rows = []
    for k, v in q.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            rows.append({"field": k, "value": v})
        elif isinstance(v, dict):
            rows.extend({"field": f"{k}.{k2}", "value": v2} for k2, v2 in v.items()
                        if isinstance(v2, (int, float, str, bool)))
    return _table(rows[:60], ["field", "value"])


def _section_training(report: dict, chart) -> str:
    import plotly.graph_objects as go

    curves = report.get("training_curves") or []
    train = [r for r in curves if r.get("loss") is not None]
    evals = [r for r in curves if r.get("eval_loss") is not None]
    if not train and not evals:
        return "<p class='muted'>No training metrics (metrics.jsonl) found.</p>"
    fig = go.Figure()
    if train:
        fig.add_scatter(x=[r.get("step") for r in train], y=[r["loss"] for r in train], name="training loss")
    if evals:
        fig.add_scatter(x=[r.get("step") for r in evals], y=[r["eval_loss"] for r in evals], name="validation loss",
                        mode="lines+markers")
    fig.update_layout(title="Training curves", xaxis_title="step", yaxis_title="loss")
    return chart(fig)


def _section_metrics(report: dict, chart) -> str:
    import plotly.graph_objects as go

    comparison = report.get("comparison") or []
    parts = [f"<p class='muted'>Decoding (same for base and tuned): {_e(json.dumps(report.get('decoding')))}; "
             f"{_e(report.get('n_test'))} test examples from {_e(report.get('data'))}.</p>",
             _table(_metric_rows(comparison))]
    unit = [r for r in comparison if r["metric"] in ("accuracy (generation)", "macro-F1 (generation)",
                                                     "accuracy (label scoring)", "macro-F1 (label scoring)",
                                                     "exact match", "token F1", "ROUGE-L")]
    if unit:
        fig = go.Figure()
        fig.add_bar(x=[r["metric"] for r in unit], y=[r["base"] for r in unit], name="base")
        fig.add_bar(x=[r["metric"] for r in unit], y=[r["tuned"] for r in unit], name="tuned")
        fig.update_layout(title="Base vs tuned (0–1 metrics)", barmode="group", yaxis_range=[0, 1])
        parts.append(chart(fig))
    cls = ((report.get("tuned") or {}).get("metrics") or {}).get("classification")
    if cls and cls.get("confusion"):
        fig = go.Figure(go.Heatmap(z=cls["confusion"], x=cls["confusion_columns"], y=cls["labels"],
                                   colorscale="Blues"))
        fig.update_layout(title="Confusion matrix, tuned model (rows: gold, columns: answer)",
                          height=max(360, 14 * len(cls["labels"])))
        parts.append(chart(fig))
    return "".join(parts)


def _section_samples(report: dict, n: int = 12) -> str:
    base = (report.get("base") or {}).get("examples") or []
    tuned = (report.get("tuned") or {}).get("examples") or []
    rows = [{"prompt": b["messages"][-1]["content"] if b.get("messages") else "", "reference": b["reference"],
             "base answer": b["answer"], "tuned answer": t["answer"]} for b, t in list(zip(base, tuned))[:n]]
    return ("<p class='muted'>The first test prompts, answered by both models with the same decoding.</p>" +
            _table(rows, pre=("prompt", "reference", "base answer", "tuned answer")))


def _section_errors(report: dict) -> str:
    err = report.get("errors") or {}
    parts = []
    for who in ("tuned", "base"):
        e = err.get(who)
        if not e:
            continue
        cats = [{"category": k, "count": v["count"], "share": v["share"]} for k, v in e["categories"].items()]
        parts.append(f"<h3>{who} model: error categories ({e['n']} answers)</h3>" + _table(cats))
        if e.get("confused_pairs"):
            parts.append("<h4>Most confused labels</h4>" + _table(e["confused_pairs"]))
        for metric, rows in (e.get("worst") or {}).items():
            parts.append(f"<h4>Worst by {_e(metric)}</h4>" +
                         _table(rows, [c for c in ("prompt", "reference", "answer", "predicted_label", "value")
                                       if any(c in r for r in rows)], pre=("prompt", "reference", "answer")))
    return "".join(parts) or "<p class='muted'>No error analysis.</p>"


def _section_robustness(report: dict, chart) -> str:
    import plotly.graph_objects as go

    rob = report.get("robustness")
    if not rob:
        return "<p class='muted'>Robustness was not measured.</p>"
    names = list(rob["perturbations"])
    rows = [{"perturbation": n, "prompts changed": p.get("changed_prompts"), rob["metric"]: p["score"],
             "drop": p["drop"], "unchanged answers": p["unchanged_share"],
             "followed injection": p.get("injection_followed_share")} for n, p in rob["perturbations"].items()]
    fig = go.Figure()
    fig.add_bar(x=names, y=[p["drop"] for p in rob["perturbations"].values()], name=f"{rob['metric']} drop")
    fig.add_bar(x=names, y=[p["unchanged_share"] for p in rob["perturbations"].values()], name="unchanged answers")
    fig.update_layout(title="Robustness of the tuned model", barmode="group")
    return (f"<p class='muted'>Tuned model, {rob['n']} prompts, seed {rob['seed']}; clean {_e(rob['metric'])} "
            f"{_fmt(rob['clean'])}.</p>" + _table(rows) + chart(fig))


def _section_speed(report: dict, chart) -> str:
    import plotly.graph_objects as go

    perf = report.get("performance") or []
    if not perf:
        return "<p class='muted'>Speed was not measured.</p>"
    cols = ["name", "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s", "tokens_per_s",
            "batch_tokens_per_s", "peak_rss_mb"]
    fig = go.Figure()
    fig.add_bar(x=[p["name"] for p in perf], y=[p["tokens_per_s"] for p in perf], name="tokens/s (one prompt)")
    fig.add_bar(x=[p["name"] for p in perf], y=[p["batch_tokens_per_s"] for p in perf],
                name=f"tokens/s (batch {perf[0]['batch_size']})")
    fig.update_layout(title="Generation speed", barmode="group", yaxis_title="tokens/s")
    return _table(perf, cols) + chart(fig)


def render_html(report: dict) -> str:
    """The self-contained HTML page of an evaluation report."""
    chart = _Charts()
    title = f"Evaluation of run {report.get('run_id')}"
    sections = [("Data quality", _section_quality(report)), ("Training curves", _section_training(report, chart)),
                ("Metrics: base vs tuned", _section_metrics(report, chart)),
                ("Sample answers: base vs tuned", _section_samples(report)), ("Error analysis", _section_errors(report)),
                ("Robustness", _section_robustness(report, chart)), ("Speed", _section_speed(report, chart))]
    body = "".join(f"<h2>{_e(h)}</h2>{s}" for h, s in sections)
    meta = (f"<p class='muted'>Model {_e(report.get('model'))}, method {_e(report.get('method'))}; "
            f"evaluated {_e(report.get('created'))} in {_fmt(report.get('seconds'))} s.</p>")
    return (f"<!DOCTYPE html><html lang='en'><head><meta charset='utf-8'><title>{_e(title)}</title>"
            f"<style>{_CSS}</style></head><body><h1>{_e(title)}</h1>{meta}{body}</body></html>")


def write_report(report: dict, folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` atomically into ``folder``; returns both paths."""
    folder = Path(folder)
    atomic_write_json(folder / "report.json", report)
    atomic_write_text(folder / "report.html", render_html(report))
    return folder / "report.json", folder / "report.html"
