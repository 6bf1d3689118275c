"""Glue between the Choose page and ``core.strategy``: recommendation, estimate, and their display."""
from __future__ import annotations

import copy
import json
from typing import Any, Optional

import streamlit as st

from ui.common import duration
from ui.i18n import t
from core.defaults import DEFAULT_MODEL, METHODS

# Presets only touch the training length and batch; method settings stay as chosen.
PRESETS = {
    "quick": {"epochs": 1, "max_steps": 30, "batch_size": 4, "max_seq_len": 256, "eval_every": 10, "save_every": 10},
    "balanced": {"epochs": 2, "max_steps": None, "batch_size": 8, "max_seq_len": 384, "eval_every": 25,
                 "save_every": 50},
    "thorough": {"epochs": 4, "max_steps": None, "batch_size": 8, "max_seq_len": 512, "eval_every": 50,
                 "save_every": 100},
}
DEFAULT_TRAIN = {"epochs": 2, "max_steps": None, "batch_size": 8, "grad_accum": 1, "lr": None, "scheduler": "cosine",
                 "warmup_ratio": 0.05, "max_seq_len": 384, "packing": False, "eval_every": 25, "save_every": 50,
                 "seed": 42}
# Minutes of training the recommendation plans for unless the user says otherwise: the whole line (define to
# chat) on an assets/ sample then fits a sitting on a 2-core laptop.
DEFAULT_BUDGET_MIN = 6
PURPOSE_TASK = {"support": "knowledge_qa", "knowledge": "knowledge_qa", "classification": "classification",
                "style": "style", "chat": "multi_turn"}


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
    from core.workspace import dataset_dir

    return _cached_recommendation(str(dataset_dir(project["active_dataset"])),
                                  PURPOSE_TASK.get(project.get("purpose"), "knowledge_qa"),
                                  project.get("base_model") or DEFAULT_MODEL,
                                  60.0 * float(project.get("time_budget_min") or DEFAULT_BUDGET_MIN),
                                  project.get("system_prompt") or None)


@st.cache_data(show_spinner=False, max_entries=32)
def _cached_recommendation(data: str, task: str, model: str, budget_s: float, system_prompt: Optional[str]) -> dict:
    from core.strategy import recommend_for_dataset

    return _as_dict(recommend_for_dataset(data, purpose=task, model=model, time_budget_s=budget_s,
                                          system_prompt=system_prompt))


def recommended_config(rec: dict) -> dict:
    """The method section and train section of a recommendation, as page 5 saves them."""
    method = rec.get("method", "lora")
    cfg = {"method": method, "train": {**DEFAULT_TRAIN, **(rec.get("train") or {})}}
    if method != "full":
        cfg[method] = dict(rec.get("params") or {})
    return cfg


def estimate(config: dict) -> Optional[dict]:
    """The ResourceEstimator's figures for a run config, as a dict; None without the engine."""
    return _cached_estimate(json.dumps(config, sort_keys=True, default=str))


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_estimate(config_json: str) -> dict:
    """One estimate per distinct config (it tokenizes a data sample and times this machine once)."""
    from core.strategy import ResourceEstimator

    config = json.loads(config_json)
    return ResourceEstimator(model=config.get("model") or DEFAULT_MODEL).estimate(config).to_dict()


def default_config(rec: Optional[dict], saved: dict) -> dict:
    """The settings the form starts from: what was saved, else the recommendation, else LoRA defaults."""
    if saved.get("method"):
        cfg = copy.deepcopy(saved)
    else:
        cfg = recommended_config(rec) if rec else {"method": "lora", "train": {}}
    cfg["train"] = {**DEFAULT_TRAIN, **(cfg.get("train") or {})}
    if cfg.get("method") not in METHODS:
        cfg["method"] = "lora"
    return cfg


def render_recommendation(rec: dict) -> None:
    """Method, reasons in plain words, runner-up and why it lost, notes on the data."""
    method = rec.get("method", "?")
    with st.container(border=True):
        st.markdown(t("choose.recommended", method=t(f"method.{method}.name")) + "  \n" +
                    t("choose.task", task=t(f"task.{rec.get('task', 'knowledge_qa')}")))
        params = rec.get("params") or {}
        if params:
            st.caption(" · ".join(f"{k} = {v}" for k, v in params.items()))
        for reason in rec.get("reasons") or []:
            st.markdown(f"- {reason}")
        runner = rec.get("runner_up") or {}
        if runner.get("method"):
            st.caption(t("choose.runner_up", method=t(f"method.{runner['method']}.name"),
                         why=runner.get("why_not") or runner.get("why") or ""))
        for note in rec.get("notes") or []:
            st.warning(str(note), icon="🧾")


def render_estimate(est: dict) -> None:
    """Trainable parameters, memory and time, with their breakdowns, and a warning when it will not fit."""
    params, memory = est.get("params") or {}, est.get("memory") or {}
    c1, c2, c3, c4 = st.columns(4)
    if params.get("total"):
        c1.metric(t("choose.est.params"), f"{params['trainable']:,}",
                  t("choose.est.share", share=100 * params.get("share", params["trainable"] / params["total"]),
                    total=params["total"] / 1e6), delta_color="off", delta_arrow="off", border=True)
    if memory.get("total") is not None:
        c2.metric(t("choose.est.memory"), f"{memory['total'] / 2**30:.2f} GiB",
                  t("choose.est.budget", budget=(memory.get("budget") or 0) / 2**30), delta_color="off", delta_arrow="off", border=True)
    c3.metric(t("choose.est.time"), duration(est.get("epoch_s")),
              t("choose.est.steps", steps=est.get("steps_per_epoch") or "?"), delta_color="off", delta_arrow="off", border=True)
    c4.metric(t("choose.est.total"), duration(est.get("total_s")),
              t("choose.est.steps", steps=est.get("total_steps") or "?"), delta_color="off", delta_arrow="off", border=True)
    if memory.get("fits") is False:
        st.error(t("choose.est.no_fit", fix="; ".join(map(str, est.get("problems") or []))), icon="🧯")
        if est.get("suggestion"):
            st.info(t("choose.est.suggestion", change=", ".join(f"{k} = {v}" for k, v in est["suggestion"].items())),
                    icon="💡")
    with st.expander(t("choose.est.breakdown")):
        c1, c2 = st.columns(2)
        c1.markdown(f"**{t('choose.est.memory')}**")
        c1.dataframe({k: f"{v / 2**20:.0f} MiB" for k, v in (memory.get("breakdown") or {}).items()
                      if isinstance(v, (int, float))}, width="stretch")
        c2.markdown(f"**{t('choose.est.step')}**")
        c2.dataframe({k: f"{v:.3f} s" for k, v in ((est.get("step") or {}).get("breakdown") or {}).items()
                      if isinstance(v, (int, float))}, width="stretch")
