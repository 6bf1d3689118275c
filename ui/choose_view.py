"""Glue between the Choose page and ``core.strategy``: recommendation, estimate, and their display."""
from __future__ import annotations

import copy
from typing import Any, Optional

import streamlit as st

from ui.common import engine
from ui.i18n import t

METHODS = ("lora", "adapter", "prefix", "full", "freeze")
# Presets only touch the training length and batch; method settings stay as chosen.
PRESETS = {
    "quick": {"epochs": 1, "max_steps": 30, "batch_size": 4, "max_seq_len": 256, "eval_every": 10, "save_every": 10},
    "balanced": {"epochs": 2, "max_steps": None, "batch_size": 8, "max_seq_len": 384, "eval_every": 25,
                 "save_every": 50},
    "thorough": {"epochs": 4, "max_steps": None, "batch_size": 8, "max_seq_len": 512, "eval_every": 50,
                 "save_every": 100},
}
DEFAULT_TRAIN = {"epochs": 2, "max_steps": None, "batch_size": 8, "grad_accum": 1, "lr": None, "scheduler": "cosine",
                 "warmup_ratio": 0.05, "max_seq_len": 384, "packing": True, "eval_every": 25, "save_every": 50,
                 "seed": 42}
PURPOSE_TASK = {"support": "qa", "knowledge": "qa", "classification": "classification", "style": "style",
                "chat": "chat"}


def _as_dict(obj: Any) -> dict:
    if obj is None:
        return {}
    if isinstance(obj, dict):
        return obj
    if hasattr(obj, "to_dict"):
        return obj.to_dict()
    if hasattr(obj, "__dataclass_fields__"):
        import dataclasses

        return dataclasses.asdict(obj)
    return dict(vars(obj))


def recommend(project: dict) -> Optional[dict]:
    """The StrategySelector's recommendation for the active dataset, as a dict; None without the engine."""
    selector_cls = engine("core.strategy", "StrategySelector")
    if selector_cls is None:
        return None
    from core.runs import dataset_dir

    fn = getattr(engine("core.strategy"), "recommend_for_dataset", None)
    if fn is not None:
        return _as_dict(fn(str(dataset_dir(project["active_dataset"])), purpose=project.get("purpose"),
                           model=project.get("base_model")))
    return _as_dict(selector_cls().recommend(dataset=str(dataset_dir(project["active_dataset"])),
                                             task=PURPOSE_TASK.get(project.get("purpose"), "qa"),
                                             model=project.get("base_model")))


def estimate(config: dict) -> Optional[dict]:
    """The ResourceEstimator's figures for a run config, as a dict; None without the engine."""
    est_cls = engine("core.strategy", "ResourceEstimator")
    if est_cls is None:
        return None
    fn = getattr(engine("core.strategy"), "estimate_config", None)
    if fn is not None:
        return _as_dict(fn(config))
    return _as_dict(est_cls().estimate(config))


def default_config(rec: Optional[dict], saved: dict) -> dict:
    """The settings the form starts from: what was saved, else the recommendation, else LoRA defaults."""
    if saved.get("method"):
        cfg = copy.deepcopy(saved)
    else:
        cfg = {"method": "lora", "train": {}}
        rec_cfg = (rec or {}).get("config") or {}
        if rec_cfg:
            cfg.update(copy.deepcopy(rec_cfg))
        elif (rec or {}).get("method") in METHODS:
            cfg["method"] = rec["method"]
    cfg["train"] = {**DEFAULT_TRAIN, **(cfg.get("train") or {})}
    if cfg.get("method") not in METHODS:
        cfg["method"] = "lora"
    return cfg


def render_recommendation(rec: dict) -> None:
    """Method, reasons in plain words, runner-up and why it lost."""
    method = rec.get("method", "?")
    with st.container(border=True):
        st.markdown(t("choose.recommended", method=t(f"method.{method}.name")))
        for reason in rec.get("reasons") or []:
            st.markdown(f"- {reason}")
        runner = rec.get("runner_up") or {}
        if runner:
            name = runner.get("method") if isinstance(runner, dict) else str(runner)
            why = runner.get("why") or runner.get("reason") if isinstance(runner, dict) else rec.get("runner_up_reason")
            st.caption(t("choose.runner_up", method=t(f"method.{name}.name"), why=why or ""))


def render_estimate(est: dict) -> None:
    """Trainable parameters, memory and time, with their breakdowns, and a warning when it will not fit."""
    c1, c2, c3 = st.columns(3)
    trainable, total = est.get("trainable_params"), est.get("total_params")
    if trainable is not None and total:
        c1.metric(t("choose.est.params"), f"{trainable:,}", f"{100 * trainable / total:.3f}% of {total / 1e6:.0f}M",
                  delta_color="off")
    mem = est.get("memory_bytes") or est.get("peak_memory_bytes")
    if mem is not None:
        c2.metric(t("choose.est.memory"), f"{mem / 2**30:.2f} GiB")
    secs = est.get("time_per_epoch_s") or est.get("seconds_per_epoch")
    if secs is not None:
        c3.metric(t("choose.est.time"), f"{secs / 60:.1f} min")
    if est.get("fits") is False:
        st.error(t("choose.est.no_fit", fix=est.get("suggestion") or est.get("fix") or ""), icon="🧯")
    with st.expander(t("choose.est.breakdown")):
        st.json(est, expanded=False)
