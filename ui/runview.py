"""Read-only views of a run folder for the train page: status, curves (plotly), progress text, log tail."""
from __future__ import annotations

from typing import Any

from core.fileio import read_json, read_jsonl

from core.workspace import run_dir
from ui.i18n import t



def run_status(run_id: str) -> dict[str, Any]:
    """``core.runs.status`` when the engine has it (it detects dead processes), else status.json as written."""
    try:
        from core.runs import status as engine_status  # type: ignore[attr-defined]
    except ImportError:
        engine_status = None
    if engine_status is not None:
        return engine_status(run_id) or {}
    return read_json(run_dir(run_id) / "status.json", {}) or {}


def _fmt_seconds(seconds: float | None) -> str:
    if seconds is None:
        return "—"
    seconds = int(seconds)
    return f"{seconds // 3600}:{seconds % 3600 // 60:02d}:{seconds % 60:02d}" if seconds >= 3600 else \
        f"{seconds // 60}:{seconds % 60:02d}"


def metrics(run_id: str) -> list[dict]:
    """All complete lines of metrics.jsonl."""
    return list(read_jsonl(run_dir(run_id) / "metrics.jsonl"))


def progress_text(run_id: str, status: dict[str, Any]) -> str:
    """'step 12 / 40 · elapsed 0:35 · ETA 1:20' using the latest metrics line for timings."""
    train_lines = [m for m in metrics(run_id) if "loss" in m]
    last = train_lines[-1] if train_lines else {}
    return t("train.progress", step=status.get("step") or 0, total=status.get("total_steps") or "?",
             elapsed=_fmt_seconds(last.get("elapsed_s")), eta=_fmt_seconds(status.get("eta_s", last.get("eta_s"))))


def curves(run_id: str) -> dict:
    """Plotly figures: loss (train and validation), learning rate, tokens/s. Empty when no metrics yet."""
    import plotly.graph_objects as go

    rows = metrics(run_id)
    train = [m for m in rows if m.get("loss") is not None]
    evals = [m for m in rows if m.get("eval_loss") is not None]
    if not train and not evals:
        return {}
    figs = {}
    loss = go.Figure()
    if train:
        loss.add_trace(go.Scatter(x=[m["step"] for m in train], y=[m["loss"] for m in train], mode="lines",
                                  name=t("train.curve.train_loss")))
    if evals:
        loss.add_trace(go.Scatter(x=[m["step"] for m in evals], y=[m["eval_loss"] for m in evals],
                                  mode="lines+markers", name=t("train.curve.val_loss")))
    figs["loss"] = _style(loss, t("train.curve.loss"))
    if any(m.get("lr") is not None for m in train):
        lr = go.Figure(go.Scatter(x=[m["step"] for m in train], y=[m.get("lr") for m in train], mode="lines",
                                  line={"color": "#F59E0B"}))
        figs["lr"] = _style(lr, t("train.curve.lr"))
    if any(m.get("tokens_per_s") is not None for m in train):
        tps = go.Figure(go.Scatter(x=[m["step"] for m in train], y=[m.get("tokens_per_s") for m in train],
                                   mode="lines", line={"color": "#10B981"}))
        figs["tps"] = _style(tps, t("train.curve.tps"))
    return figs


def _style(fig, title: str):
    fig.update_layout(title=title, height=300, margin={"l": 10, "r": 10, "t": 40, "b": 10},
                      xaxis_title=t("train.curve.step"), legend={"orientation": "h", "y": -0.25})
    return fig


def log_tail(run_id: str, lines: int = 20) -> str:
    """The last lines of train.log (``core.runs.log_tail``)."""
    from core.runs import log_tail as engine_tail

    return engine_tail(run_id, lines)
