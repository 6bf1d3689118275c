"""Evaluation as a background job: ``python -m core eval`` in its own process (through core.jobs), so a long
evaluation survives a page reload or a click elsewhere. The child writes its progress to ``runs/<id>/eval/
progress.json`` (see core.evaluation.cli); callers (the Evaluate page) poll ``state()``, which reads that file and
``job.json``, and checks the process with the one liveness test of core.jobs."""
from __future__ import annotations

from pathlib import Path
from typing import Optional

from core import jobs
from core.workspace import run_dir

JOB_FILE = "job.json"
LOG_FILE = "eval.log"
PROGRESS_FILE = "progress.json"


def folder(run_id: str) -> Path:
    """``runs/<id>/eval``: the evaluation job's folder (job.json, progress.json, eval.log, report.*)."""
    return run_dir(run_id) / "eval"


def start(run_id: str, limit: Optional[int], checks: Optional[list[str]] = None) -> None:
    """Start ``python -m core eval RUN_ID [--limit N] [--checks a,b]`` in its own session (output appended to
    eval/eval.log)."""
    args = [run_id] + (["--limit", str(int(limit))] if limit else [])
    args += ["--checks", ",".join(checks)] if checks else []
    (folder(run_id) / PROGRESS_FILE).unlink(missing_ok=True)  # the previous job's
    jobs.spawn(folder(run_id), "eval", args, log_name=LOG_FILE, job_file=JOB_FILE,
               extra={"limit": limit, "checks": list(checks or [])})


def log_tail(run_id: str, lines: int = 15) -> str:
    """The last lines of eval.log."""
    return jobs.log_tail(folder(run_id) / LOG_FILE, lines)


def state(run_id: str) -> dict:
    """{"state": idle|running|done|failed, "fraction", "message"} of the run's latest evaluation job."""
    current = jobs.job_state(folder(run_id), JOB_FILE, PROGRESS_FILE)
    return {k: current[k] for k in ("state", "fraction", "message")}
