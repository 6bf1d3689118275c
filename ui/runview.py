"""Read-only views of a run folder for the train page: status, curves (plotly), progress, notes, log tail."""
from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Optional

from core.fileio import read_jsonl
from core import runs
from core.workspace import run_dir
from ui.common import duration, figure
from ui.i18n import strings, t

RECHECK_S = 15
SLOW_OTHER_CPU_PCT = 20  # other programs using at least this share of the CPU are named as the cause


def run_status(run_id: str) -> dict[str, Any]:
    """``core.runs.status`` (it detects dead processes and damaged files)."""
    return runs.status(run_id) or {}




def metrics(run_id: str) -> list[dict]:
    """All complete lines of metrics.jsonl."""
    return list(read_jsonl(run_dir(run_id) / "metrics.jsonl"))


def _stat(path: Path) -> Optional[tuple]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_size, st.st_mtime_ns


def files_stamp(run_id: str) -> tuple:
    """Size and mtime of status.json and metrics.jsonl: changes exactly when there is something new to draw."""
    folder = run_dir(run_id)
    return _stat(folder / "status.json"), _stat(folder / "metrics.jsonl")


def live_stamp(run_id: str) -> tuple:
    """What the live Train view redraws on: the files' stamp, and a clock tick every ``RECHECK_S`` seconds so a
    trainer killed without a word (its files stay quiet) is still noticed."""
    return files_stamp(run_id), int(time.time() // RECHECK_S)


def progress_text(status: dict[str, Any], rows: list[dict]) -> str:
    """'Step 12 / 40 · elapsed 0:35 · ETA 1:20': the status's ETA, the latest metrics line's elapsed time."""
    train_lines = [m for m in rows if "loss" in m]
    last = train_lines[-1] if train_lines else {}
    return t("train.progress", step=status.get("step") or 0, total=status.get("total_steps") or "?",
             elapsed=duration(last.get("elapsed_s")), eta=duration(status.get("eta_s", last.get("eta_s"))))


def eval_progress(status: dict[str, Any]) -> Optional[tuple[float, str]]:
    """(fraction, text) of the validation pass in progress (status ``phase: "eval"``), else None."""
    if status.get("phase") != "eval":
        return None
    done, total = int(status.get("eval_batch") or 0), int(status.get("eval_batches") or 0)
    return (min(1.0, done / total) if total else 0.0), t("train.eval_progress", batch=done, batches=total or "?")


def note_text(note: dict) -> str:
    """A note of the trainer (``{"code", "params"}``) in the session's language."""
    code, params = note.get("code", ""), note.get("params") or {}
    if f"train_note.{code}" not in strings("en"):
        return t("train_note.unknown", code=code, params=", ".join(f"{k}={v}" for k, v in params.items()))
    try:
        return t(f"train_note.{code}", **params)
    except (KeyError, IndexError):  # a parameter the text expects is missing: the text without the figures
        return t(f"train_note.{code}")


def slow_text(slow: Optional[dict]) -> Optional[str]:
    """Why steps take longer than estimated (status ``slow``), or None when they do not."""
    if not slow or not slow.get("ratio"):
        return None
    other = slow.get("other_cpu_pct")
    if other is not None and other >= SLOW_OTHER_CPU_PCT:
        return t("train.slow_other", ratio=slow["ratio"], other=other)
    return t("train.slow_machine", ratio=slow["ratio"])


def curves(rows: list[dict]) -> dict:
    """Plotly figures: loss (train and validation), learning rate, tokens/s. Empty when no metrics yet."""
    import plotly.graph_objects as go

    train = [m for m in rows if m.get("loss") is not None]
    evals = [m for m in rows if m.get("eval_loss") is not None]
    if not train and not evals:
        return {}
    steps = [m["step"] for m in train]
    loss = []
    if train:
        loss.append(go.Scatter(x=steps, y=[m["loss"] for m in train], mode="lines", name=t("train.curve.train_loss")))
    if evals:
        loss.append(go.Scatter(x=[m["step"] for m in evals], y=[m["eval_loss"] for m in evals],
                               mode="lines+markers", name=t("train.curve.val_loss")))
    figs = {"loss": style(loss, t("train.curve.loss"))}
    if any(m.get("lr") is not None for m in train):
        figs["lr"] = style([go.Scatter(x=steps, y=[m.get("lr") for m in train], mode="lines",
                                       line={"color": "#F59E0B"})], t("train.curve.lr"))
    if any(m.get("tokens_per_s") is not None for m in train):
        figs["tps"] = style([go.Scatter(x=steps, y=[m.get("tokens_per_s") for m in train], mode="lines",
                                        line={"color": "#10B981"})], t("train.curve.tps"))
    return figs


def preference_curves(rows: list[dict]) -> dict:
    """DPO/ORPO runs: reward margin and accuracy, and the chosen and rejected log-probs, per step (empty for SFT)."""
    import plotly.graph_objects as go

    pref = [m for m in rows if m.get("reward_margin") is not None]
    if not pref:
        return {}
    steps = [m["step"] for m in pref]

    def line(key: str, name: str):
        return go.Scatter(x=steps, y=[m.get(key) for m in pref], mode="lines", name=t(name))

    return {"rewards": style([line("reward_margin", "train.curve.reward_margin"),
                              line("reward_accuracy", "train.curve.reward_accuracy")], t("train.curve.rewards")),
            "logps": style([line("logp_chosen", "train.curve.logp_chosen"),
                            line("logp_rejected", "train.curve.logp_rejected")], t("train.curve.logps"))}


def style(traces: list, title: str):
    """A training chart: the app's layout, steps on x, the legend underneath."""
    return figure(traces, title, xaxis={"title": {"text": t("train.curve.step")}},
                  legend={"orientation": "h", "y": -0.25})


def log_tail(run_id: str, lines: int = 20) -> str:
    """The last lines of train.log (``core.runs.log_tail``)."""
    return runs.log_tail(run_id, lines)


def weights_panel(run_id: str, status: dict[str, Any]):
    """Say which weights the page uses ("as of step N" for a stopped or failed run) and offer Resume beside them;
    returns the ``UsableWeights``, or None (with a hint) when the run has none yet."""
    import streamlit as st

    from core.checkpoints import usable_weights

    state = status.get("state", "unknown")
    weights = usable_weights(run_id)
    c1, c2 = st.columns([4, 1])
    if weights is None:
        c1.warning(t("weights.none"), icon="👈")
    elif weights.final:
        c1.caption(t("weights.final", step=weights.step))
    else:
        c1.info(t("weights.as_of", step=weights.step, total=weights.total_steps or "?", state=t(f"state.{state}")),
                icon="💾")
    if state in ("stopped", "failed") and c2.button(t("weights.resume"), key=f"resume_{run_id}_here"):
        runs.resume(run_id)
        st.toast(t("weights.resumed"), icon="▶️")
        st.rerun()
    return weights
