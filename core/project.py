"""The active project (assistant name, purpose, persona, system prompt, base model, chosen method, active dataset
and run, interface language) kept in ``<workspace>/project.json``, and which steps of the line are done.

Reads are cached on the file's identity (inode, size, mtime), so a page that asks many times reads it once;
updates hold a file lock around read-modify-write, so two tabs saving at once do not lose each other's change.
"""
from __future__ import annotations

import copy
import threading
from pathlib import Path
from typing import Any, Optional

from filelock import FileLock

from core.defaults import DEFAULT_MODEL
from core.fileio import atomic_write_json, read_json
from core.workspace import dataset_dir, run_dir, workspace_home

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
    "run_config": None,    # the run config built on page 5
    "time_budget_min": None,  # page 5: minutes of training the recommendation plans for (None: the default)
    "language": None,      # the interface language last chosen ("en", "zh"); None: English
}
STEPS = ("define", "upload", "analyze", "prepare", "choose", "train", "evaluate", "chat_export")

_CACHE: dict[str, tuple[tuple, dict]] = {}
_CACHE_LOCK = threading.Lock()


def project_path() -> Path:
    """``<workspace>/project.json``."""
    return workspace_home() / "project.json"


def _identity(path: Path) -> Optional[tuple]:
    try:
        st = path.stat()
    except FileNotFoundError:
        return None
    return st.st_ino, st.st_size, st.st_mtime_ns


def _read_saved(path: Path) -> dict:
    try:
        saved = read_json(path, {}) or {}
    except ValueError:  # a corrupt file must not lock the user out: start from defaults
        saved = {}
    return saved if isinstance(saved, dict) else {}


def _merge(saved: dict) -> dict[str, Any]:
    project = copy.deepcopy(DEFAULTS)
    project.update({k: v for k, v in saved.items() if k in DEFAULTS or k.startswith("x_")})
    return project


def load_project() -> dict[str, Any]:
    """The saved project merged over the defaults; the file is parsed again only when it changed."""
    path = project_path()
    ident = _identity(path)
    with _CACHE_LOCK:
        hit = _CACHE.get(str(path))
        if ident is not None and hit and hit[0] == ident:
            return copy.deepcopy(hit[1])
    project = _merge(_read_saved(path)) if ident is not None else copy.deepcopy(DEFAULTS)
    if ident is not None:
        with _CACHE_LOCK:
            _CACHE[str(path)] = (ident, copy.deepcopy(project))
    return project


def save_project(project: dict[str, Any]) -> None:
    """Write the project atomically (under the project's lock)."""
    path = project_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        atomic_write_json(path, {k: project.get(k, v) for k, v in DEFAULTS.items()})


def update_project(**changes: Any) -> dict[str, Any]:
    """Change some fields in one locked read-modify-write; returns the new project."""
    path = project_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    with FileLock(str(path) + ".lock"):
        project = _merge(_read_saved(path))  # read under the lock: never from the cache
        project.update(changes)
        atomic_write_json(path, {k: project.get(k, v) for k, v in DEFAULTS.items()})
    return project


def _exists(path: Any) -> bool:
    return bool(path) and Path(path).exists()


def _inside(folder_of, item_id: Optional[str], name: str) -> Optional[Path]:
    if not item_id:
        return None
    try:
        return folder_of(item_id) / name
    except ValueError:  # an id that is not a valid folder name: nothing there
        return None


def step_done(project: dict[str, Any]) -> dict[str, bool]:
    """Which of the 8 steps are done for this project, judged from the workspace files (not the session)."""
    data, run = project.get("active_dataset"), project.get("active_run")
    upload = (project.get("upload") or {}).get("path")
    status_file = _inside(run_dir, run, "status.json")
    try:
        status = (read_json(status_file, {}) or {}) if status_file else {}
    except ValueError:  # a damaged status file: the train page explains it, the sidebar just shows "not done"
        status = {}
    export = _inside(run_dir, run, "export")
    return {
        "define": bool(project.get("name") and project.get("system_prompt")),
        "upload": _exists(upload) or _exists(_inside(dataset_dir, data, "raw")),
        "analyze": (bool(upload) and project.get("analyzed") == upload)
        or _exists(_inside(dataset_dir, data, "quality.json")),
        "prepare": _exists(_inside(dataset_dir, data, "splits")),
        "choose": bool(project.get("run_config")),
        "train": status.get("state") == "completed",
        "evaluate": _exists(_inside(run_dir, run, "eval/report.json")),
        "chat_export": bool(export) and export.is_dir() and any(export.iterdir()),
    }
