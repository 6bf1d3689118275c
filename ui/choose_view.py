"""Glue between the Choose page and ``core.strategy``: recommendation, estimate, and their display."""
from __future__ import annotations

import copy
import json
from typing import Any

import streamlit as st

from ui.common import duration
from ui.i18n import t
from core.defaults import DEFAULT_BUDGET_MIN, DEFAULT_MODEL, METHODS
from core.errors import UserError
from core.peft.config import default_section
from core.run_config import FORM_TRAIN_DEFAULTS, FORM_TRAIN_KEYS, PRESETS, recommended_config

# The method widgets with a key each (hp_<method>_<name>), so the recommendation can set them too.
METHOD_WIDGETS = {"lora": ("r", "alpha", "dropout", "target_modules", "use_rslora", "use_dora"),
                  "adapter": ("bottleneck", "nonlinearity", "placement"),
                  "prefix": ("num_virtual_tokens", "projection_dim"), "freeze": ("trainable_layers",)}
# The widgets of the train section, keyed so presets and "Use the recommendation" can set them before they render.
TRAIN_WIDGET = {key: f"hp_{key}" for key in FORM_TRAIN_KEYS}


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


def recommend(project: dict) -> dict | None:
    """The StrategySelector's recommendation for the active dataset, as a dict; None without the engine."""
    from core.workspace import dataset_dir

    return _cached_recommendation(str(dataset_dir(project["active_dataset"])),
                                  _task(project.get("purpose")),
                                  project.get("base_model") or DEFAULT_MODEL,
                                  60.0 * float(project.get("time_budget_min") or DEFAULT_BUDGET_MIN),
                                  project.get("system_prompt") or None)


def _task(purpose: str | None) -> str:
    """The strategy's task kind for the project's purpose (knowledge Q&A when it names none the engine knows)."""
    from core.strategy import normalize_task

    try:
        return normalize_task(purpose or "knowledge_qa")
    except UserError:  # a purpose the engine has no rule for
        return "knowledge_qa"


# A quarter of an hour: the recommendation's time comes from a probe of the machine's current speed.
@st.cache_data(show_spinner=False, max_entries=32, ttl=900)
def _cached_recommendation(data: str, task: str, model: str, budget_s: float, system_prompt: str | None) -> dict:
    from core.strategy import recommend_for_dataset

    return _as_dict(recommend_for_dataset(data, purpose=task, model=model, time_budget_s=budget_s,
                                          system_prompt=system_prompt))


def estimate(config: dict) -> dict | None:
    """The ResourceEstimator's figures for a run config, as a dict; None without the engine."""
    return _cached_estimate(json.dumps(config, sort_keys=True, default=str))


@st.cache_data(show_spinner=False, max_entries=64)
def _cached_estimate(config_json: str) -> dict:
    """One estimate per distinct config (it tokenizes a data sample and times this machine once)."""
    from core.strategy import ResourceEstimator, checked_estimate

    config = json.loads(config_json)
    return checked_estimate(config, ResourceEstimator(model=config.get("model") or DEFAULT_MODEL)).to_dict()


def default_config(rec: dict | None, saved: dict) -> dict:
    """The settings the form starts from: what was saved, else the recommendation, else LoRA defaults."""
    if saved.get("method"):
        cfg = copy.deepcopy(saved)
    else:
        cfg = recommended_config(rec) if rec else {"method": "lora", "train": {}}
    cfg["train"] = {**FORM_TRAIN_DEFAULTS, **(cfg.get("train") or {})}
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
        for item in rec.get("reasons") or []:
            st.markdown(f"- {reason_text(item)}")
        runner = rec.get("runner_up") or {}
        if runner.get("method"):
            st.caption(t("choose.runner_up", method=t(f"method.{runner['method']}.name"),
                         why=" ".join(reason_text(r) for r in runner.get("why") or [])))
            st.caption(t("choose.runner_up_why_not",
                         why=" ".join(reason_text(r) for r in runner.get("why_not") or [])))
        for note in rec.get("notes") or []:
            st.warning(reason_text(note), icon="🧾")


def reason_text(item: dict) -> str:
    """A strategy reason (a code with parameters) in the session's language."""
    return t(f"strategy.{item['code']}", **(item.get("params") or {}))


INT_TRAIN_KEYS = ("epochs", "max_steps", "batch_size", "grad_accum", "max_seq_len", "eval_every", "save_every", "seed")


def _train_widget_value(key: str, value: Any) -> Any:
    if key in INT_TRAIN_KEYS:
        return int(value or 0)
    if key in ("lr", "warmup_ratio"):
        return float(value or 0.0)
    return bool(value) if key == "packing" else value


def widget_values(cfg: dict) -> dict:
    """Session-state values of the keyed widgets that show ``cfg``: method, its section and the train section."""
    method = cfg.get("method") if cfg.get("method") in METHODS else "lora"
    train = {**FORM_TRAIN_DEFAULTS, **(cfg.get("train") or {})}
    values = {TRAIN_WIDGET[k]: _train_widget_value(k, train[k]) for k in FORM_TRAIN_KEYS}
    values["method_pick"] = method
    if method in METHOD_WIDGETS:
        section = {**default_section(method), **(cfg.get(method) or {})}
        for name in METHOD_WIDGETS[method]:
            value = section.get(name, False)
            if name in ("target_modules", "placement"):
                value = [value] if isinstance(value, str) else list(value)
            elif name == "dropout":
                value = float(value)
            elif name not in ("nonlinearity", "use_rslora", "use_dora"):
                value = int(value)
            values[f"hp_{method}_{name}"] = value
    return values


def with_expected_speed(config: dict, rec: dict | None) -> dict:
    """``config`` with the recommendation's measured seconds per step when it trains the same shapes."""
    train = (rec or {}).get("train") or {}
    same = rec and rec.get("method") == config.get("method") and all(
        config["train"].get(k) == train.get(k) for k in ("batch_size", "grad_accum", "max_seq_len"))
    if same and train.get("expected_step_s"):
        config["train"]["expected_step_s"] = train["expected_step_s"]
    return config


def preset_values(preset: str) -> dict:
    """Session-state values a preset sets: only training length and batch widgets."""
    return {TRAIN_WIDGET[k]: (int(v or 0) if k == "max_steps" else v) for k, v in PRESETS[preset].items()}


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
        st.error(t("choose.est.no_fit", fix=" ".join(reason_text(p) for p in est.get("problems") or [])), icon="🧯")
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
