"""Run configs from the Choose page's choices: the training presets and the project's model, data and prompt.

A light module (no torch): the Train page imports it to start runs.
"""
from __future__ import annotations

import copy
from typing import Any

from core.defaults import DEFAULT_MODEL, TRAIN_DEFAULTS
from core.workspace import dataset_dir, slugify

# Presets set only the training length and batch; method settings stay as chosen.
PRESETS = {
    "quick": {"epochs": 1, "max_steps": 30, "batch_size": 4, "max_seq_len": 256, "eval_every": 10, "save_every": 10},
    "balanced": {"epochs": 2, "max_steps": None, "batch_size": 8, "max_seq_len": 384, "eval_every": 25,
                 "save_every": 50},
    "thorough": {"epochs": 4, "max_steps": None, "batch_size": 8, "max_seq_len": 512, "eval_every": 50,
                 "save_every": 100},
}
# The train keys the Choose page edits, with their defaults.
FORM_TRAIN_KEYS = ("epochs", "max_steps", "batch_size", "grad_accum", "lr", "scheduler", "max_seq_len", "eval_every",
                   "save_every", "seed", "warmup_ratio", "packing")
FORM_TRAIN_DEFAULTS = {k: TRAIN_DEFAULTS[k] for k in FORM_TRAIN_KEYS}


def recommended_config(rec: dict) -> dict:
    """The method section and train section of a recommendation (a dict), as the Choose page saves them."""
    method = rec.get("method", "lora")
    cfg = {"method": method, "train": {**FORM_TRAIN_DEFAULTS, **(rec.get("train") or {})}}
    if method != "full":
        cfg[method] = dict(rec.get("params") or {})
    if rec.get("objective") not in (None, "sft"):  # preference pairs: dpo or orpo
        cfg["objective"] = rec["objective"]
    return cfg


def build_run_config(project: dict[str, Any]) -> dict[str, Any]:
    """The run config from the Choose page's choices plus the project's model, data and system prompt."""
    config = {k: v for k, v in copy.deepcopy(project.get("run_config") or {}).items() if not k.startswith("x_")}
    config["model"] = project.get("base_model") or DEFAULT_MODEL
    if project.get("active_dataset"):
        config["data"] = str(dataset_dir(project["active_dataset"]))
    if project.get("system_prompt"):
        config["system_prompt"] = project["system_prompt"]
    if project.get("name"):
        config["name"] = slugify(project["name"], "run")[:30]
    return config
