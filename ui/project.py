"""The active project (assistant name, purpose, persona, system prompt, base model, chosen method, active
dataset and run) kept in ``<workspace>/project.json`` so a browser reload or a restart keeps it."""
from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from core.defaults import DEFAULT_MODEL
from core.fileio import atomic_write_json, read_json

from core.workspace import workspace_home

DEFAULTS: dict[str, Any] = {
    "name": "",
    "purpose": "support",
    "persona": "",
    "system_prompt": "",
    "base_model": DEFAULT_MODEL,
    "upload": None,        # {"path", "display_name", "format", "mapping"} of the file chosen on page 2
    "analyzed": None,      # path of the upload whose quality report was looked at
    "active_dataset": None,
    "active_run": None,
    "method": None,        # chosen on page 5
    "run_config": None,    # the run config (DESIGN §3) built on page 5
    "time_budget_min": None,  # page 5: minutes of training the recommendation plans for (None: the default)
}


def project_path() -> Path:
    """``<workspace>/project.json``."""
    return workspace_home() / "project.json"


def load_project() -> dict[str, Any]:
    """The saved project merged over the defaults (a missing or unreadable file gives the defaults)."""
    try:
        saved = read_json(project_path(), {}) or {}
    except ValueError:  # a corrupt file must not lock the user out: start from defaults
        saved = {}
    project = copy.deepcopy(DEFAULTS)
    project.update({k: v for k, v in saved.items() if k in DEFAULTS or k.startswith("x_")})
    return project


def save_project(project: dict[str, Any]) -> None:
    """Write the project atomically."""
    atomic_write_json(project_path(), {k: project.get(k, v) for k, v in DEFAULTS.items()})


def update_project(**changes: Any) -> dict[str, Any]:
    """Load, change some fields, save; returns the new project."""
    project = load_project()
    project.update(changes)
    save_project(project)
    return project


STEPS = ("define", "upload", "analyze", "prepare", "choose", "train", "evaluate", "chat_export")


def _exists(path: Any) -> bool:
    return bool(path) and Path(path).exists()


def step_done(project: dict[str, Any]) -> dict[str, bool]:
    """Which of the 8 steps are done for this project, judged from the workspace files (not the session)."""
    from core.workspace import dataset_dir, run_dir

    def dataset_file(name: str) -> Path | None:
        try:
            return dataset_dir(project["active_dataset"]) / name if project.get("active_dataset") else None
        except ValueError:
            return None

    def run_file(name: str) -> Path | None:
        try:
            return run_dir(project["active_run"]) / name if project.get("active_run") else None
        except ValueError:
            return None

    upload = (project.get("upload") or {}).get("path")
    try:
        status = read_json(run_file("status.json"), {}) if run_file("status.json") else {}
    except ValueError:  # a damaged status file: the train page explains it, the sidebar just shows "not done"
        status = {}
    export = run_file("export")
    return {
        "define": bool(project.get("name") and project.get("system_prompt")),
        "upload": _exists(upload) or _exists(dataset_file("raw")),
        "analyze": (bool(upload) and project.get("analyzed") == upload) or _exists(dataset_file("quality.json")),
        "prepare": _exists(dataset_file("splits")),
        "choose": bool(project.get("run_config")),
        "train": (status or {}).get("state") == "completed",
        "evaluate": _exists(run_file("eval/report.json")),
        "chat_export": bool(export) and export.is_dir() and any(export.iterdir()),
    }
