"""Evaluation as a background job: ``python -m core eval`` in its own process, so a long evaluation survives a
page reload or a click elsewhere; callers (the Evaluate page) poll ``state()``, which reads ``runs/<id>/eval/job.json``
and the progress lines of ``eval.log``."""
from __future__ import annotations

import os
import re
import subprocess
import sys
import time
from pathlib import Path
from typing import Optional

from core.fileio import atomic_write_json, read_json

from core.workspace import run_dir, workspace_home

JOB_FILE = "job.json"
LOG_FILE = "eval.log"
_PROGRESS = re.compile(r"\[\s*(\d+)%\s+\d+s\]\s*(.*)")
_CHILDREN: dict[str, subprocess.Popen] = {}  # reaped by state(), so no zombies in a long-lived server


def _folder(run_id: str) -> Path:
    """``runs/<id>/eval``."""
    return run_dir(run_id) / "eval"


def start(run_id: str, limit: Optional[int]) -> None:
    """Start ``python -m core eval RUN_ID [--limit N]`` in its own session, output to eval/eval.log."""
    folder = _folder(run_id)
    folder.mkdir(parents=True, exist_ok=True)
    cmd = [sys.executable, "-m", "core", "eval", run_id] + (["--limit", str(int(limit))] if limit else [])
    env = {**os.environ, "ASSISTANT_FACTORY_HOME": str(workspace_home()), "PYTHONUNBUFFERED": "1"}
    with open(folder / LOG_FILE, "wb") as log:
        proc = subprocess.Popen(cmd, cwd=str(Path(__file__).resolve().parents[2]), stdin=subprocess.DEVNULL,
                                stdout=log, stderr=subprocess.STDOUT, start_new_session=True, env=env)
    _CHILDREN[run_id] = proc
    atomic_write_json(folder / JOB_FILE, {"pid": proc.pid, "started": time.time(), "limit": limit})


def _alive(pid) -> bool:
    try:
        import psutil

        return psutil.Process(int(pid)).status() != psutil.STATUS_ZOMBIE
    except Exception:  # noqa: BLE001 - gone, or not ours to inspect
        return False


def log_tail(run_id: str, lines: int = 15) -> str:
    """The last lines of eval.log."""
    try:
        text = (_folder(run_id) / LOG_FILE).read_text(encoding="utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def state(run_id: str) -> dict:
    """{"state": idle|running|done|failed, "fraction", "message"} of the run's latest evaluation job."""
    proc = _CHILDREN.get(run_id)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(run_id, None)
    job = read_json(_folder(run_id) / JOB_FILE, None)
    if not job:
        return {"state": "idle", "fraction": 0.0, "message": ""}
    fraction, message = 0.0, ""
    for line in log_tail(run_id, 50).splitlines():
        match = _PROGRESS.match(line.strip())
        if match:
            fraction, message = int(match.group(1)) / 100, match.group(2)
    report = _folder(run_id) / "report.json"
    if report.exists() and report.stat().st_mtime >= job["started"]:
        return {"state": "done", "fraction": 1.0, "message": message}
    if _alive(job.get("pid")):
        return {"state": "running", "fraction": fraction, "message": message}
    return {"state": "failed", "fraction": fraction, "message": message}
