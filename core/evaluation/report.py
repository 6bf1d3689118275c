"""The evaluation report: ``report.json`` and a self-contained ``report.html``.

The HTML is a Jinja2 template with autoescaping (``templates/page.html.j2``): every value from the report is
escaped by the template, and only plotly's own chart HTML is marked safe. Sections are lists of blocks built by
the public helpers below (``note``, ``heading``, ``table``, ``Charts``), which the method lab's export uses too.

The HTML embeds plotly.js inline once (``include_plotlyjs=True`` on the first chart, none after), so it opens with
no network: no ``<script src>``, ``<link href>`` or ``<img src>`` points to another host. The plotly bundle itself
contains URL strings in its code (map tile servers, its CDN for optional MathJax/topojson); they are only used by
chart types this report does not draw.
"""
from __future__ import annotations

import json
from pathlib import Path
from typing import Any, Optional, Sequence

from jinja2 import Environment, FileSystemLoader, select_autoescape
from markupsafe import Markup

from core.evaluation.metrics import METRICS, row_code
from core.fileio import atomic_write_json, atomic_write_text

CSS = Markup("""
body{font-family:system-ui,-apple-system,Segoe UI,Roboto,sans-serif;margin:2rem auto;max-width:1100px;color:#222;
padding:0 1rem}h1{font-size:1.6rem}h2{border-bottom:1px solid #ddd;padding-bottom:.2rem;margin-top:2rem}
table{border-collapse:collapse;margin:.5rem 0;font-size:.9rem}td,th{border:1px solid #ddd;padding:.25rem .5rem;
vertical-align:top;text-align:left}th{background:#f4f4f4}.good{color:#18794e}.bad{color:#c62828}
.muted{color:#777;font-size:.85rem}pre{white-space:pre-wrap;margin:0;font-family:inherit}
""")
Block = dict
Section = tuple[str, list[Block]]


def cell(value: Any) -> str:
    """A table cell's text: floats to 4 significant digits (thousands grouped), None empty."""
    if value is None:
        return ""
    if isinstance(value, float):
        return f"{value:.4g}" if abs(value) < 1000 else f"{value:,.0f}"
    return str(value)


_ENV = Environment(loader=FileSystemLoader(Path(__file__).parent / "templates"),
                   autoescape=select_autoescape(["html", "j2"], default_for_string=True))
_ENV.filters["cell"] = cell


def note(text: str) -> Block:
    """A muted paragraph."""
    return {"kind": "note", "text": text}


def heading(text: str, level: int = 3) -> Block:
    """A sub-heading inside a section (h3 or h4)."""
    return {"kind": f"h{level}", "text": text}


def table(rows: Sequence[dict], columns: Optional[Sequence[str]] = None, pre: Sequence[str] = ()) -> Block:
    """A table of ``rows`` (dicts) with ``columns`` (default: the first row's keys); ``pre`` columns keep line
    breaks."""
    rows = list(rows)
    return {"kind": "table", "rows": rows, "columns": list(columns or (rows[0] if rows else [])), "pre": list(pre)}


class Charts:
    """Turns plotly figures into chart blocks; the first one carries the inline plotly.js bundle."""

    def __init__(self):
        self.first = True

    def __call__(self, fig) -> Block:
        fig.update_layout(margin=dict(l=40, r=20, t=64, b=40), height=360)
        html = fig.to_html(full_html=False, include_plotlyjs=self.first, include_mathjax=False,
                           config={"displaylogo": False, "responsive": True})
        self.first = False
        return {"kind": "chart", "html": Markup(html)}  # plotly's own markup: the one thing not escaped


def render_page(title: str, meta: Sequence[str], sections: Sequence[Section]) -> str:
    """A self-contained HTML page: title, muted meta lines, then (heading, blocks) sections."""
    return _ENV.get_template("page.html.j2").render(title=title, meta=list(meta), sections=list(sections), css=CSS)


def _metric_rows(comparison: list[dict]) -> list[dict]:
    rows = []
    for r in comparison:
        better = r.get("higher_is_better")
        verdict = "" if better is None or r["delta"] == 0 else (
            "better" if (r["delta"] > 0) == bool(better) else "worse")
        rows.append({"metric": r["metric"], "base": r["base"], "tuned": r["tuned"], "delta": r["delta"],
                     "tuned is": verdict})
    return rows


def _section_quality(report: dict) -> list[Block]:
    q = report.get("data_quality")
    if not q:
        return [note("The run's data is not a prepared dataset; no quality report.")]
    rows = []
    for k, v in q.items():
        if isinstance(v, (int, float, str, bool)) or v is None:
            rows.append({"field": k, "value": v})
        elif isinstance(v, dict):
            rows.extend({"field": f"{k}.{k2}", "value": v2} for k2, v2 in v.items()
                        if isinstance(v2, (int, float, str, bool)))
    return [table(rows[:60], ["field", "value"])]


def _section_training(report: dict, chart) -> list[Block]:
    import plotly.graph_objects as go

    curves = report.get("training_curves") or []
    train = [r for r in curves if r.get("loss") is not None]
    evals = [r for r in curves if r.get("eval_loss") is not None]
    if not train and not evals:
        return [note("No training metrics (metrics.jsonl) found.")]
    fig = go.Figure()
    if train:
        fig.add_scatter(x=[r.get("step") for r in train], y=[r["loss"] for r in train], name="training loss")
    if evals:
        fig.add_scatter(x=[r.get("step") for r in evals], y=[r["eval_loss"] for r in evals], name="validation loss",
                        mode="lines+markers")
    fig.update_layout(title="Training curves", xaxis_title="step", yaxis_title="loss")
    return [chart(fig)]


def _section_metrics(report: dict, chart) -> list[Block]:
    import plotly.graph_objects as go

    comparison = report.get("comparison") or []
    blocks = [note(f"Decoding (same for base and tuned): {json.dumps(report.get('decoding'))}; "
                   f"{report.get('n_test')} test examples from {report.get('data')}."), table(_metric_rows(comparison))]
    unit = [r for r in comparison if METRICS.get(row_code(r), ("", None, False))[2]]
    if unit:
        fig = go.Figure()
        fig.add_bar(x=[r["metric"] for r in unit], y=[r["base"] for r in unit], name="base")
        fig.add_bar(x=[r["metric"] for r in unit], y=[r["tuned"] for r in unit], name="tuned")
        fig.update_layout(title="Base vs tuned (0–1 metrics)", barmode="group", yaxis_range=[0, 1])
        blocks.append(chart(fig))
    cls = ((report.get("tuned") or {}).get("metrics") or {}).get("classification")
    if cls and cls.get("confusion"):
        fig = go.Figure(go.Heatmap(z=cls["confusion"], x=cls["confusion_columns"], y=cls["labels"],
                                   colorscale="Blues"))
        fig.update_layout(title="Confusion matrix, tuned model (rows: gold, columns: answer)",
                          height=max(360, 14 * len(cls["labels"])))
        blocks.append(chart(fig))
    return blocks


def _section_samples(report: dict, n: int = 12) -> list[Block]:
    base = (report.get("base") or {}).get("examples") or []
    tuned = (report.get("tuned") or {}).get("examples") or []
    rows = [{"prompt": b["messages"][-1]["content"] if b.get("messages") else "", "reference": b["reference"],
             "base answer": b["answer"], "tuned answer": t["answer"]} for b, t in list(zip(base, tuned))[:n]]
    return [note("The first test prompts, answered by both models with the same decoding."),
            table(rows, ["prompt", "reference", "base answer", "tuned answer"],
                  pre=("prompt", "reference", "base answer", "tuned answer"))]


def _section_errors(report: dict) -> list[Block]:
    err = report.get("errors") or {}
    blocks = []
    for who in ("tuned", "base"):
        e = err.get(who)
        if not e:
            continue
        cats = [{"category": k, "count": v["count"], "share": v["share"]} for k, v in e["categories"].items()]
        blocks += [heading(f"{who} model: error categories ({e['n']} answers)"), table(cats)]
        if e.get("confused_pairs"):
            blocks += [heading("Most confused labels", 4), table(e["confused_pairs"])]
        for metric, rows in (e.get("worst") or {}).items():
            columns = [c for c in ("prompt", "reference", "answer", "predicted_label", "value")
                       if any(c in r for r in rows)]
            blocks += [heading(f"Worst by {metric}", 4), table(rows, columns, pre=("prompt", "reference", "answer"))]
    return blocks or [note("No error analysis.")]


def _section_robustness(report: dict, chart) -> list[Block]:
    import plotly.graph_objects as go

    rob = report.get("robustness")
    if not rob:
        return [note("Robustness was not measured.")]
    names = list(rob["perturbations"])
    rows = [{"perturbation": n, "prompts changed": p.get("changed_prompts"), rob["metric"]: p["score"],
             "drop": p["drop"], "unchanged answers": p["unchanged_share"],
             "followed injection": p.get("injection_followed_share")} for n, p in rob["perturbations"].items()]
    fig = go.Figure()
    fig.add_bar(x=names, y=[p["drop"] for p in rob["perturbations"].values()], name=f"{rob['metric']} drop")
    fig.add_bar(x=names, y=[p["unchanged_share"] for p in rob["perturbations"].values()], name="unchanged answers")
    fig.update_layout(title="Robustness of the tuned model", barmode="group")
    return [note(f"Tuned model, {rob['n']} prompts, seed {rob['seed']}; clean {rob['metric']} {cell(rob['clean'])}."),
            table(rows), chart(fig)]


def _section_speed(report: dict, chart) -> list[Block]:
    import plotly.graph_objects as go

    perf = report.get("performance") or []
    if not perf:
        return [note("Speed was not measured.")]
    cols = ["name", "ttft_p50_s", "ttft_p95_s", "latency_p50_s", "latency_p95_s", "tokens_per_s",
            "batch_tokens_per_s", "peak_rss_mb"]
    fig = go.Figure()
    fig.add_bar(x=[p["name"] for p in perf], y=[p["tokens_per_s"] for p in perf], name="tokens/s (one prompt)")
    fig.add_bar(x=[p["name"] for p in perf], y=[p["batch_tokens_per_s"] for p in perf],
                name=f"tokens/s (batch {perf[0]['batch_size']})")
    fig.update_layout(title="Generation speed", barmode="group", yaxis_title="tokens/s")
    return [table(perf, cols), chart(fig)]


CHECK_TITLES = {"gate": "Release gate", "forgetting": "Check: forgetting", "abstention": "Check: abstention",
                "leaks": "Check: leaks", "causes": "Check: causes of bad answers",
                "baselines": "Check: was tuning worth it? (baselines)", "curve": "Check: would more data help?"}
MAX_CHECK_ITEMS = 20  # rows of a check's items shown in the HTML (report.json keeps them all)
PLAIN_NOTES = {  # the verdicts a reader looks for, in plain words (the app words the same codes per language)
    "causes.method_minhash": "Nearest training rows found by MinHash (character 5-gram overlap of question and answer).",
    "baselines.beaten": "Tuning beat the baselines: the tuned model scores above the few-shot base model and the "
                        "retrieval baseline.",
    "baselines.not_beaten": "Tuning did NOT beat the baselines: a few-shot prompt or retrieving the nearest training "
                            "answer does as well or better.",
    "baselines.few_shot_sampled": "The few-shot baseline asked the base model on an even sample of the test prompts "
                                  "(few_shot_n); the tuned model is compared with it on those same prompts "
                                  "(score_on_few_shot_prompts).",
    "curve.more_data_helps": "More data would likely help: the score still rose from 50 % to 100 % of the data.",
    "curve.plateau": "More data would likely not help much: the score flattened from 50 % to 100 % of the data.",
    "curve.unknown": "Not enough scored learning-curve points for a verdict.",
    "curve.waiting": "Some learning-curve runs are still training or not evaluated.",
    "curve.not_started": "No learning curve was started.",
}


def _section_gate(gate: dict) -> list[Block]:
    rows = [{"check": name, "result": v["status"].upper(), "value": v.get("value"), "threshold": v.get("limit")}
            for name, v in gate["checks"].items()]
    blocks = [note(f"Overall: {gate['status'].upper()}. Thresholds: {json.dumps(gate.get('thresholds'))}."),
              table(rows, ["check", "result", "value", "threshold"])]
    if gate.get("overrides"):
        blocks += [heading("Exported although the gate did not pass", 4),
                   table(gate["overrides"], ["who", "when", "status"])]
    return blocks


def _flat(item: dict) -> dict:
    """A check item as table cells: lists of dicts (nearest rows) as lines of text."""
    out = {}
    for k, v in item.items():
        if isinstance(v, list) and v and isinstance(v[0], dict):
            out[k] = "\n".join(f"#{r.get('index')} ({cell(r.get('similarity'))}) {r.get('question', '')} → "
                                f"{r.get('answer', '')}" for r in v)
        elif isinstance(v, (dict, list)):
            out[k] = json.dumps(v, ensure_ascii=False)
        else:
            out[k] = v
    return out


def _section_check(check: dict, chart) -> list[Block]:
    figures = [{"model": who, **{k: v for k, v in (check.get(who) or {}).items()
                                 if not isinstance(v, (dict, list))}} for who in ("base", "tuned")]
    figures = [f for f in figures if len(f) > 1]
    blocks = [heading(PLAIN_NOTES.get(code, code), 4) for code in check.get("notes") or []]
    blocks.append(note(f"{check.get('seconds', 0):.1f} s, {check.get('generated', 0)} answers generated."))
    if figures:
        columns = ["model"] + sorted({k for f in figures for k in f} - {"model"})
        blocks.append(table(figures, columns))
    if check.get("name") == "curve":
        blocks += _curve_chart(check, chart)
    items = [_flat(i) for i in (check.get("items") or [])[:MAX_CHECK_ITEMS]]
    if items:
        blocks += [heading(f"Items ({len(check.get('items') or [])}, first {len(items)} shown)", 4),
                   table(items, pre=[c for c in items[0] if isinstance(items[0][c], str)])]
    return blocks


def _curve_chart(check: dict, chart) -> list[Block]:
    import plotly.graph_objects as go

    points = [p for p in check.get("items") or [] if p.get("score") is not None]
    if not points:
        return []
    fig = go.Figure(go.Scatter(x=[p["fraction"] for p in points], y=[p["score"] for p in points],
                               mode="lines+markers"))
    fig.update_layout(title="Learning curve", xaxis_title="share of the training data", yaxis_title="score")
    return [chart(fig)]


def check_sections(report: dict, chart) -> list[Section]:
    """The release gate and one section per check that ran (report["checks"])."""
    sections = [(CHECK_TITLES["gate"], _section_gate(report["gate"]))] if report.get("gate") else []
    for name, check in (report.get("checks") or {}).items():
        sections.append((CHECK_TITLES.get(name, f"Check: {name}"), _section_check(check, chart)))
    return sections


def _meta(report: dict) -> list[str]:
    objective = f" ({report['objective']})" if report.get("objective") not in (None, "sft") else ""
    lines = [f"Model {report.get('model')}, method {report.get('method')}{objective}; evaluated "
             f"{report.get('created')} in {cell(report.get('seconds'))} s."]
    weights = report.get("weights") or {}
    if weights and not weights.get("final"):
        total = weights.get("total_steps") or "?"
        lines.append(f"Weights: the checkpoint as of step {weights.get('step')} of {total} (the run did not finish).")
    return lines


PAIR_FIGURES = {"accuracy": "pair accuracy (chosen more likely)", "mean_margin": "mean log-prob margin",
                "logp_chosen": "mean log-prob, chosen", "logp_rejected": "mean log-prob, rejected"}


def _section_pairs(report: dict, chart) -> list[Block]:
    import plotly.graph_objects as go

    pairs = report["pairs"]
    base, tuned = pairs.get("base") or {}, pairs.get("tuned") or {}
    rows = [{"figure": name, "base": base.get(k), "tuned": tuned.get(k),
             "change": None if base.get(k) is None or tuned.get(k) is None else tuned[k] - base[k]}
            for k, name in PAIR_FIGURES.items()]
    blocks = [heading(f"Pair accuracy: base {base.get('accuracy', 0):.1%} → tuned {tuned.get('accuracy', 0):.1%} "
                      f"(gain {pairs.get('accuracy_gain', 0) * 100:+.1f} points)"),
              note(f"Share of {tuned.get('n')} held-out pairs from {report.get('data')} where the model gives the "
                   "chosen answer a higher summed log-probability than the rejected one; 50 % is a coin flip."),
              table(rows, ["figure", "base", "tuned", "change"])]
    if tuned.get("dropped"):
        blocks.append(note(f"{tuned['dropped']} pairs longer than max_seq_len were left out."))
    fig = go.Figure()
    fig.add_bar(x=["base", "tuned"], y=[base.get("accuracy"), tuned.get("accuracy")], name="pair accuracy")
    fig.update_layout(title="Held-out pair accuracy", yaxis_range=[0, 1])
    return blocks + [chart(fig)]


def _section_pair_samples(report: dict) -> list[Block]:
    columns = ["prompt", "chosen", "rejected", "base", "tuned"]
    from core.data.pairs import messages_text

    rows = [{c: messages_text(s.get(c)) for c in columns} for s in report["pairs"].get("samples") or []]
    return [note("Free generation: the first held-out prompts answered greedily by both models, beside the pair's "
                 "chosen and rejected answers."), table(rows, columns, pre=columns)]


def _sections(report: dict, chart) -> list[Section]:
    if "pairs" in report:  # a DPO/ORPO run: pair accuracy instead of the conversation metrics
        return [("Training curves", _section_training(report, chart)),
                ("Pair accuracy: base vs tuned", _section_pairs(report, chart)),
                ("Free-generation samples: base vs tuned", _section_pair_samples(report)),
                ("Speed", _section_speed(report, chart))]
    return [("Data quality", _section_quality(report)), ("Training curves", _section_training(report, chart)),
            ("Metrics: base vs tuned", _section_metrics(report, chart)),
            ("Sample answers: base vs tuned", _section_samples(report)),
            ("Error analysis", _section_errors(report)),
            ("Robustness", _section_robustness(report, chart)), ("Speed", _section_speed(report, chart))]


def render_html(report: dict) -> str:
    """The self-contained HTML page of an evaluation report."""
    chart = Charts()
    sections = _sections(report, chart)
    sections = check_sections(report, chart) + sections  # the gate first: it is what a release decision reads
    return render_page(f"Evaluation of run {report.get('run_id')}", _meta(report), sections)


def write_report(report: dict, folder: str | Path) -> tuple[Path, Path]:
    """Write ``report.json`` and ``report.html`` atomically into ``folder``; returns both paths."""
    folder = Path(folder)
    atomic_write_json(folder / "report.json", report)
    atomic_write_text(folder / "report.html", render_html(report))
    return folder / "report.json", folder / "report.html"
