"""The method lab: the same dataset through LoRA, Adapter, Prefix, full and freeze, compared side by side.

A lab is ``workspace/labs/<lab_id>.json`` (the plan and the run ids). Each method is an ordinary run in
``runs/<id>/`` (launched through :func:`core.runs.launch`, so the runs queue on the workspace lock and train one after
another); it can be opened, evaluated and chatted with like any other run. Every number in the comparison is read
back from the run folders (``config.json``, ``status.json``, ``metrics.jsonl``, ``train.log``, ``eval/report.json``),
never from memory, so the table survives restarts and shows exactly what the runs recorded.
"""
from __future__ import annotations

import datetime as _dt
import json
import math
import os
import re
import statistics
from pathlib import Path
from typing import Callable, Optional, Sequence

from core.defaults import ACTIVE_STATES, DEFAULT_MODEL, METHODS
from core.errors import UserError
from core.fileio import atomic_write_json, atomic_write_text, read_json, read_jsonl
from core.workspace import dataset_dir, kind_dir, new_id, run_dir, validate_id

LAB_KIND = "labs"
RUNNERS = ("queue", "subprocess", "inprocess")
MIN_STEPS = 2
FALLBACK_STEPS = 20           # when the estimator cannot time a step
BUDGET_SHARE = 0.8            # of each method's share: the rest pays model loading and the final save
LOAD_S = {"tiny": 1.0, "default": 15.0}
EVAL_POINTS = 5               # validation-loss points on each curve
LAB_EVAL_EXAMPLES = 50        # validation examples per eval inside the lab (keeps evals cheap)
SAMPLES = 3                   # sample answers kept per method
_PARAMS_RE = re.compile(r"method (\w+), ([\d,]+) trainable of ([\d,]+) parameters")

ProgressFn = Callable[[float, str], None]


# ---------------------------------------------------------------- files
def labs_dir() -> Path:
    """``<workspace>/labs`` (created on first use)."""
    return kind_dir(LAB_KIND)


def lab_path(lab_id: str) -> Path:
    """``labs/<lab_id>.json``."""
    return labs_dir() / f"{validate_id(lab_id, 'lab id')}.json"


def load_lab(lab_id: str) -> dict:
    """The lab record; UserError when there is no such lab."""
    lab = read_json(lab_path(lab_id))
    if lab is None:
        raise UserError(f"There is no lab {lab_id!r} in this workspace; list them with list_labs().")
    return lab


def list_labs() -> list[dict]:
    """Every lab record, newest first."""
    labs = [read_json(p) for p in labs_dir().glob("*.json")]
    return sorted((lab for lab in labs if isinstance(lab, dict) and lab.get("lab_id")),
                  key=lambda lab: lab.get("created", ""), reverse=True)


# ---------------------------------------------------------------- planning
def _data_path(dataset: str) -> str:
    """A dataset id becomes its folder; a folder or file path is kept."""
    if not dataset:
        raise UserError("Choose a dataset for the lab: a prepared dataset id or a data file.")
    path = Path(dataset).expanduser()
    if path.exists():
        return str(path.resolve())
    folder = dataset_dir(dataset)
    if not (folder / "splits").is_dir():
        raise UserError(f"There is no prepared dataset {dataset!r}; prepare one first (`python -m core prepare FILE`) "
                        "or give a data file path.")
    return str(folder)


def method_params(method: str) -> dict:
    """The method's section: the strategy's recommended settings (freeze: the run config default)."""
    from core import strategy
    from core.training.config import TrainingConfig

    sections = {"lora": strategy.LORA_QV, "adapter": strategy.ADAPTER, "prefix": strategy.PREFIX}
    if method in sections:
        return json.loads(json.dumps(sections[method]))
    from dataclasses import fields

    field = next(f for f in fields(TrainingConfig) if f.name == method)
    return dict(field.default_factory())  # the run config's documented default section


def _load_seconds(model: str) -> float:
    return LOAD_S["tiny"] if model.startswith("tiny") else LOAD_S["default"]


def _timing(cfg: dict) -> dict:
    """The estimator's seconds per step, steps per epoch and seconds per eval for a config (empty when unknown)."""
    try:
        from core.strategy import ResourceEstimator

        est = ResourceEstimator(cfg["model"]).estimate(cfg)
    except Exception as exc:  # noqa: BLE001 - planning still works with a fixed number of steps
        return {"error": f"{type(exc).__name__}: {exc}"}
    # The mean step over the real data, not the largest batch's: budgets are spent over a whole epoch.
    mean = est.epoch_s / est.steps_per_epoch if est.epoch_s and est.steps_per_epoch else None
    return {"step_s": mean or est.step.seconds, "steps_per_epoch": est.steps_per_epoch,
            "eval_s": (est.data or {}).get("eval_s") or 0.0}


def _steps_for(budget_s: float, model: str, timing: dict, epochs: float) -> int:
    """Optimizer steps that fit ``budget_s`` (after loading and ~EVAL_POINTS evals), capped at ``epochs`` epochs."""
    step_s = timing.get("step_s")
    if not step_s:
        return FALLBACK_STEPS
    usable = budget_s * BUDGET_SHARE - _load_seconds(model) - EVAL_POINTS * (timing.get("eval_s") or 0.0)
    steps = max(MIN_STEPS, int(usable / step_s))
    if timing.get("steps_per_epoch"):
        steps = min(steps, max(MIN_STEPS, math.ceil(epochs * timing["steps_per_epoch"])))
    return steps


def plan_lab(dataset: str, model: str, budget_s: Optional[float], methods: Sequence[str] = METHODS,
             base_config: Optional[dict] = None) -> list[dict]:
    """One run config per method; ``max_steps`` chosen so each run fits ``budget_s / len(methods)``.

    Method sections come from core.strategy's recommendations, the learning rate from SmartOptimizer's per-method
    default (``lr: null``). An explicit ``train.max_steps`` in ``base_config`` wins over the budget;
    ``budget_s=None`` trains every method for ``train.epochs`` epochs (default 3) instead.
    """
    problems = [f"unknown method {m!r}" for m in methods if m not in METHODS]
    if not methods:
        problems.append("no methods chosen")
    if len(set(methods)) != len(list(methods)):
        problems.append("a method is listed twice")
    if budget_s is not None and (not isinstance(budget_s, (int, float)) or budget_s <= 0):
        problems.append(f"the time budget must be a positive number of seconds, got {budget_s!r}")
    if problems:
        raise UserError("Cannot plan the lab: " + "; ".join(problems) + f". Choose methods from {', '.join(METHODS)} "
                        "and a budget such as 600 (seconds).")
    base = json.loads(json.dumps(base_config or {}))
    fixed_steps = (base.get("train") or {}).get("max_steps")
    data = _data_path(dataset)
    per_method = float(budget_s) / len(methods) if budget_s is not None else None
    configs = []
    for method in methods:
        train = {"batch_size": 8, "lr": None, "max_eval_examples": LAB_EVAL_EXAMPLES, **(base.get("train") or {})}
        cfg = {**{k: v for k, v in base.items() if k not in METHODS and k != "train"},
               "model": model, "data": data, "method": method,
               method: {**method_params(method), **(base.get(method) or {})}, "train": train}
        epochs = float(train.get("epochs") or 3)
        timing = {} if fixed_steps else _timing(cfg)
        if fixed_steps:
            steps = int(fixed_steps)
        elif per_method is None:  # by epochs: the trainer counts the steps; the estimate only spaces the evals
            steps = math.ceil(epochs * timing["steps_per_epoch"]) if timing.get("steps_per_epoch") else None
        else:
            steps = _steps_for(per_method, model, timing, epochs)
        train["max_steps"] = steps if per_method is not None or fixed_steps else None
        train.setdefault("eval_every", max(1, (steps or 50 * EVAL_POINTS) // EVAL_POINTS))
        train.setdefault("save_every", max(steps or 100, 1))
        cfg["_plan"] = {"budget_s": per_method, "steps": steps, "epochs": epochs, **timing}
        configs.append(cfg)
    return configs


# ---------------------------------------------------------------- launching
def _clean(cfg: dict) -> dict:
    """The run config without the lab's own ``_plan`` notes (TrainingConfig rejects unknown keys)."""
    return {k: v for k, v in cfg.items() if not k.startswith("_")}


def _prepare(cfg: dict, run_id: str) -> bool:
    """Write the run's config.json for a lab runner that trains here; False when a stop was asked for meanwhile."""
    from core.runs import stop_requested

    if stop_requested(run_id):  # stopped while it waited in this lab: runs.stop() already marked it "stopped"
        return False
    atomic_write_json(run_dir(run_id, create=True) / "config.json", _clean(cfg))
    return True


def _run_inprocess(cfg: dict, run_id: str) -> int:
    """Train one run in this process (peak memory is then the process's, shared by the runs before it)."""
    import contextlib

    from core.__main__ import main

    if not _prepare(cfg, run_id):
        return 0
    # The trainer's progress lines go to train.log, as they do for a queued run.
    with open(run_dir(run_id) / "train.log", "a", encoding="utf-8") as log, contextlib.redirect_stdout(log):
        return main(["train", "--resume", run_id])


def _run_subprocess(cfg: dict, run_id: str) -> int:
    """Train one run in a fresh ``python -m core train`` process, waiting for it (own peak memory per run)."""
    from core import jobs
    from core.runs import spawn_trainer

    if not _prepare(cfg, run_id):
        return 0
    code = jobs.wait(spawn_trainer(run_id))
    return 1 if code is None else code


def launch_lab(dataset: str, model: str = DEFAULT_MODEL, budget_s: Optional[float] = 600,
               methods: Sequence[str] = METHODS, base_config: Optional[dict] = None, name: Optional[str] = None,
               runner: str = "queue", progress: Optional[ProgressFn] = None) -> str:
    """Plan and start a lab; returns its id. ``queue`` (default) launches every run through core.runs.launch
    (they train one after another in the background); ``subprocess``/``inprocess`` train them here, in order."""
    from core.runs import launch

    if runner not in RUNNERS:
        raise UserError(f"Unknown lab runner {runner!r}; choose one of {', '.join(RUNNERS)}.")
    configs = plan_lab(dataset, model, budget_s, methods, base_config)
    lab_id = new_id(name or "lab")
    lab = {"lab_id": lab_id, "created": _dt.datetime.now(_dt.timezone.utc).isoformat(timespec="seconds"),
           "dataset": dataset, "data": configs[0]["data"], "model": model, "budget_s": budget_s,
           "methods": list(methods), "runner": runner,
           "runs": [{"method": c["method"], "run_id": f"{lab_id}-{c['method']}", "plan": c["_plan"]}
                    for c in configs]}
    atomic_write_json(lab_path(lab_id), lab)  # written first, so the page can show the queue at once
    if runner != "queue":
        _mark_waiting(lab, os.getpid())
    progress = progress or (lambda f, m: None)
    for i, (cfg, entry) in enumerate(zip(configs, lab["runs"])):
        progress(i / len(configs), f"{cfg['method']}: {entry['run_id']}")
        if runner == "queue":
            launch(_clean(cfg), run_id=entry["run_id"])
        elif runner == "subprocess":
            _run_subprocess(cfg, entry["run_id"])
        else:
            _run_inprocess(cfg, entry["run_id"])
    progress(1.0, "launched" if runner == "queue" else "trained")
    return lab_id


def _mark_waiting(lab: dict, pid: int) -> None:
    """Runs this process will train later are "queued" under its pid (core.runs.status marks them failed if it dies;
    ``holder: lab`` tells core.runs.stop there is no trainer to signal yet). Each run's folder is new."""
    import time

    from core.jobs import start_ticks
    from core.workspace import reserve_dir

    for entry in lab["runs"]:
        atomic_write_json(reserve_dir("runs", entry["run_id"]) / "status.json", {
            "state": "queued", "pid": pid, "pid_started": start_ticks(pid), "holder": "lab", "step": None,
            "total_steps": None, "heartbeat": time.time(), "error": None, "run_id": entry["run_id"]})


def lab_status(lab_id: str) -> dict:
    """The lab's overall state and each run's status (state, step, total steps)."""
    from core.runs import status

    lab = load_lab(lab_id)
    runs = []
    for entry in lab["runs"]:
        st = status(entry["run_id"])  # the one liveness check; "unknown" before the run has a status
        runs.append({"method": entry["method"], "run_id": entry["run_id"], "state": st.get("state"),
                     "step": st.get("step"), "total_steps": st.get("total_steps"), "error": st.get("error")})
    states = [r["state"] for r in runs]
    if any(s in ACTIVE_STATES for s in states):
        overall = "running"
    elif all(s == "completed" for s in states):
        overall = "completed"
    elif any(s == "completed" for s in states):
        overall = "partial"
    else:
        overall = "failed"
    return {"lab_id": lab_id, "state": overall, "done": sum(s not in ACTIVE_STATES for s in states),
            "total": len(runs), "runs": runs}


def stop_lab(lab_id: str) -> dict:
    """Stop every run of the lab that is still queued or running; returns lab_status."""
    from core.runs import stop

    for r in lab_status(lab_id)["runs"]:
        if r["state"] in ACTIVE_STATES:
            stop(r["run_id"])
    return lab_status(lab_id)


# ---------------------------------------------------------------- results, from the run folders only
def _params_from_log(folder: Path) -> Optional[tuple[int, int]]:
    """(trainable, total) from the trainer's "N trainable of M parameters" line in train.log."""
    try:
        text = (folder / "train.log").read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return None
    found = _PARAMS_RE.findall(text)
    if not found:
        return None
    _, trainable, total = found[-1]
    return int(trainable.replace(",", "")), int(total.replace(",", ""))


def _params_from_config(cfg: dict) -> Optional[tuple[int, int]]:
    """(trainable, total) counted exactly on the config's model built on the meta device."""
    try:
        from core.strategy import ResourceEstimator

        count = ResourceEstimator(cfg["model"]).parameters(cfg["method"], cfg.get(cfg["method"]) or {})
        return count.trainable, count.total
    except Exception:  # noqa: BLE001 - an unknown model: leave the cell blank
        return None


def _task_metric(report: dict) -> tuple[Optional[str], Optional[float], Optional[float]]:
    """(metric name, tuned value, label-scoring accuracy) of an evaluation report."""
    tuned = report.get("tuned") or {}
    metrics = tuned.get("metrics") or {}
    scored = (tuned.get("label_scoring") or {}).get("accuracy")
    if metrics.get("classification"):
        return "accuracy", metrics["classification"].get("accuracy"), scored
    text = metrics.get("text") or {}
    return "token_f1", text.get("token_f1"), scored


def _samples(report: dict, n: int = SAMPLES) -> list[dict]:
    from core.evaluation.prompts import last_user_text

    out = []
    for ex in ((report.get("tuned") or {}).get("examples") or [])[:n]:
        out.append({"prompt": last_user_text(ex.get("messages") or []), "reference": ex.get("reference"),
                    "answer": ex.get("answer")})
    return out


def run_row(method: str, run_id: str) -> dict:
    """One comparison row, read from ``runs/<run_id>/`` only."""
    from core.runs import status

    folder = run_dir(run_id)
    st = status(run_id)  # a damaged run shows as "damaged" and the other rows stay readable
    cfg = {} if st.get("state") == "damaged" else read_json(folder / "config.json", {}) or {}
    lines = list(read_jsonl(folder / "metrics.jsonl"))
    train_lines = [m for m in lines if "loss" in m and not m.get("skipped")]
    evals = [m for m in lines if m.get("eval_loss") is not None]
    params = _params_from_log(folder) or (_params_from_config(cfg) if cfg else None)
    trainable, total = params if params else (None, None)
    speeds = [m["tokens_per_s"] for m in train_lines if m.get("tokens_per_s")]
    peaks = [m["peak_mem_mb"] for m in train_lines if m.get("peak_mem_mb")]
    wall = None
    if st.get("state") in ("completed", "stopped") and st.get("started_at") and st.get("heartbeat"):
        wall = float(st["heartbeat"]) - float(st["started_at"])
    report = read_json(folder / "eval" / "report.json")
    metric_name, metric, scored = _task_metric(report) if report else (None, None, None)
    text = ((report or {}).get("tuned") or {}).get("metrics", {}).get("text") or {}
    return {
        "method": cfg.get("method") or method, "run_id": run_id, "state": st.get("state", "unknown"),
        "steps": st.get("step"), "trainable": trainable, "total": total,
        "trainable_pct": 100.0 * trainable / total if trainable is not None and total else None,
        "peak_mb": max(peaks) if peaks else None, "wall_s": wall,
        "train_s": train_lines[-1].get("elapsed_s") if train_lines else None,
        "tokens_per_s": statistics.median(speeds) if speeds else None,
        "final_val_loss": evals[-1]["eval_loss"] if evals else None,
        "val_curve": [[m["step"], m["eval_loss"]] for m in evals],
        "loss_curve": [[m["step"], m["loss"]] for m in train_lines if m.get("loss") is not None],
        "metric_name": metric_name, "metric": metric, "label_scoring_accuracy": scored,
        "rouge_l": text.get("rouge_l") if metric_name == "token_f1" else None, "n_test": (report or {}).get("n_test"),
        "samples": _samples(report) if report else [], "evaluated": report is not None,
    }


def lab_results(lab_id: str) -> list[dict]:
    """One row per method, every value read back from that method's run folder."""
    return [run_row(entry["method"], entry["run_id"]) for entry in load_lab(lab_id)["runs"]]


def evaluate_lab(lab_id: str, limit: Optional[int] = 20, progress: Optional[ProgressFn] = None,
                 force: bool = False, label_scoring: Optional[bool] = None) -> list[str]:
    """Evaluate (base vs tuned, no robustness/speed) every completed run lacking ``eval/report.json``; returns
    the run ids evaluated. ``label_scoring=None``: on for classification data (see ``evaluate_run``)."""
    from core.evaluation import evaluate_run

    progress = progress or (lambda f, m: None)
    todo = [r for r in lab_status(lab_id)["runs"] if r["state"] == "completed"
            and (force or not (run_dir(r["run_id"]) / "eval" / "report.json").exists())]
    for i, r in enumerate(todo):
        def sub(f: float, m: str, i=i, r=r) -> None:
            progress((i + f) / len(todo), f"{r['method']}: {m}")

        evaluate_run(r["run_id"], limit=limit, progress=sub, robustness=False, performance=False,
                     label_scoring=label_scoring)
    progress(1.0, "done")
    return [r["run_id"] for r in todo]


COLUMNS = ["method", "trainable", "trainable_pct", "peak_mb", "wall_s", "tokens_per_s", "final_val_loss",
           "metric", "rouge_l", "label_scoring_accuracy", "state", "run_id"]


def lab_table(lab_or_rows) -> "pandas.DataFrame":  # noqa: F821 - pandas is imported lazily
    """The comparison as a DataFrame (one row per method; blank cells where a run recorded nothing)."""
    import pandas as pd

    rows = lab_results(lab_or_rows) if isinstance(lab_or_rows, str) else list(lab_or_rows)
    frame = pd.DataFrame([{c: r.get(c) for c in COLUMNS} for r in rows], columns=COLUMNS)
    names = {r.get("metric_name") for r in rows} - {None}
    frame.attrs["metric_name"] = names.pop() if len(names) == 1 else "metric"
    return frame


def format_table(frame) -> str:
    """A plain-text table for the terminal (bench and CLI)."""
    def cell(col, v):
        if v is None or (isinstance(v, float) and math.isnan(v)):
            return "-"
        if col == "trainable":
            return f"{int(v):,}"
        if col in ("trainable_pct",):
            return f"{v:.3f}"
        if col in ("metric", "rouge_l", "label_scoring_accuracy", "final_val_loss"):
            return f"{v:.4f}"
        if isinstance(v, float):
            return f"{v:,.1f}"
        return str(v)

    records = frame.to_dict("records")
    cols = [c for c in COLUMNS if c != "run_id" and any(cell(c, r[c]) != "-" for r in records)] or ["method"]
    header = [c if c != "metric" else frame.attrs.get("metric_name", "metric") for c in cols]
    body = [[cell(c, r[c]) for c in cols] for r in records]
    widths = [max(len(h), *(len(b[i]) for b in body)) if body else len(h) for i, h in enumerate(header)]
    lines = ["  ".join(h.ljust(w) for h, w in zip(header, widths))]
    lines += ["  ".join(v.ljust(w) for v, w in zip(b, widths)) for b in body]
    return "\n".join(lines)


# ---------------------------------------------------------------- charts and the HTML export
def lab_figures(rows: list[dict]) -> dict:
    """Plotly figures of a comparison: bar charts per quantity and the validation-loss curves."""
    import plotly.graph_objects as go

    methods = [r["method"] for r in rows]
    figs = {}
    for key, title in (("trainable", "Trainable parameters"), ("peak_mb", "Peak memory (MB)"),
                       ("wall_s", "Wall time (s)"), ("tokens_per_s", "Tokens per second"),
                       ("metric", "Task metric (tuned)")):
        fig = go.Figure(go.Bar(x=methods, y=[r.get(key) for r in rows]))
        fig.update_layout(title=title, height=320)
        if key == "trainable":
            fig.update_yaxes(type="log")
        figs[key] = fig
    curve = go.Figure()
    for r in rows:
        if r.get("val_curve"):
            curve.add_trace(go.Scatter(x=[p[0] for p in r["val_curve"]], y=[p[1] for p in r["val_curve"]],
                                       mode="lines+markers", name=r["method"]))
    curve.update_layout(title="Validation loss", xaxis_title="step", yaxis_title="loss", height=360)
    figs["val_curve"] = curve
    return figs


def export_html(lab_id: str, path: Optional[str | Path] = None) -> Path:
    """A self-contained HTML comparison (table, charts, sample answers) at ``labs/<lab_id>.html``; returns it."""
    from core.evaluation.report import Charts, heading, note, render_page, table

    lab = load_lab(lab_id)
    rows = lab_results(lab_id)
    chart = Charts()
    columns = ["prompt", "reference", "answer"]
    samples = [block for r in rows for block in (heading(r["method"]), table(r["samples"], columns, pre=columns))]
    meta = [f"Model {lab.get('model')}, data {lab.get('dataset')}, budget {lab.get('budget_s')} s, created "
            f"{lab.get('created')}. Every value is read from the run folders named in the table."]
    sections = [("Comparison", [table([{c: r.get(c) for c in COLUMNS} for r in rows])]),
                ("Charts", [chart(fig) for fig in lab_figures(rows).values()] or [note("(none)")]),
                ("Sample answers", samples)]
    target = Path(path) if path else labs_dir() / f"{lab_id}.html"
    atomic_write_text(target, render_page(f"Method lab {lab_id}", meta, sections))
    return target

