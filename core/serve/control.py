"""Start, stop and inspect a background ``python -m core serve`` through core.jobs (for the app's Serve tab).

One server per run; its job record, log and status file live in ``runs/<id>/serve/``. The API key travels to
the child in its environment, never on its command line (which other local users can read in /proc).
"""
from __future__ import annotations

import hashlib
import os
import threading
import time
from pathlib import Path
from typing import Optional

from core import jobs
from core.errors import UserError
from core.fileio import atomic_write_json
from core.serve.cli import API_KEY_ENV, DEFAULT_HOST, DEFAULT_PORT
from core.workspace import run_dir

JOB_FILE = "serve.json"
LOG_FILE = "serve.log"
STATUS_FILE = "status.json"
_ENV_LOCK = threading.Lock()  # the key is put in os.environ only for the instant spawn copies it


def serve_dir(run_id: str) -> Path:
    """``runs/<id>/serve/``: the server's job record, log and status file."""
    return run_dir(run_id) / "serve"


def start_server(run_id: str, host: str = DEFAULT_HOST, port: int = DEFAULT_PORT, api_key: Optional[str] = None,
                 merged: bool = False, base: bool = False) -> dict:
    """Start serving ``run_id`` in the background; returns the job record (UserError when one already runs).

    ``api_key=None`` keeps this process's ASSISTANT_FACTORY_API_KEY when it has one; ``""`` serves without a key.
    """
    from core.chat import load_run_config

    load_run_config(run_id)  # an unknown run fails here, not in a log file
    if server_status(run_id)["running"]:
        raise UserError(f"Run '{run_id}' is already being served; stop that server first.")
    if api_key is None:
        api_key = os.environ.get(API_KEY_ENV) or None
    folder = serve_dir(run_id)
    (folder / STATUS_FILE).unlink(missing_ok=True)
    args = [run_id, "--host", host, "--port", str(int(port)), "--status-file", str(folder / STATUS_FILE)]
    args += ["--merged"] * merged + ["--base"] * base
    with _ENV_LOCK:
        old = os.environ.pop(API_KEY_ENV, None)
        if api_key:
            os.environ[API_KEY_ENV] = api_key
        try:
            return jobs.spawn(folder, "serve", args, log_name=LOG_FILE, job_file=JOB_FILE,
                              extra={"run_id": run_id, "auth": bool(api_key), "key_id": key_id(api_key),
                                     "base": base, "merged": merged})
        finally:
            os.environ.pop(API_KEY_ENV, None)
            if old is not None:
                os.environ[API_KEY_ENV] = old


def key_id(api_key: Optional[str]) -> Optional[str]:
    """A short fingerprint of an API key (the first 16 hex digits of its SHA-256): tells which key a server
    expects without storing the key; None without a key."""
    return hashlib.sha256(api_key.encode()).hexdigest()[:16] if api_key else None


def server_status(run_id: str) -> dict:
    """state, running, ready (listening), url, model, pid, auth, base, merged and the log's last lines of a run's
    server. state: none (never started), starting, running, stopped (by stop_server) or failed (exited by itself)."""
    folder = serve_dir(run_id)
    job = jobs.read_job(folder, JOB_FILE)
    running = jobs.alive(job)
    progress = jobs.read_progress(folder / STATUS_FILE, job) if running else None
    if running:
        state = "running" if progress else "starting"
    else:
        state = "none" if not job else "stopped" if job.get("stopped") else "failed"
    job = job or {}
    return {"state": state, "running": running, "ready": bool(progress), "url": (progress or {}).get("url"),
            "model": (progress or {}).get("model"),
            "pid": job.get("pid") if running else None, "auth": bool(job.get("auth")), "key_id": job.get("key_id"),
            "base": bool(job.get("base")), "merged": bool(job.get("merged")),
            "log_tail": jobs.log_tail(folder / LOG_FILE)}


def wait_ready(run_id: str, timeout: float = 120.0, poll_s: float = 0.2) -> dict:
    """Wait until the run's server listens; its status (UserError with the log tail when it exited instead)."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        status = server_status(run_id)
        if status["ready"]:
            return status
        if not status["running"]:
            raise UserError(f"The server of run '{run_id}' exited: {status['log_tail'] or 'no output'}")
        time.sleep(poll_s)
    raise UserError(f"The server of run '{run_id}' did not start listening within {timeout:.0f} s.")


def stop_server(run_id: str, timeout: float = 10.0) -> bool:
    """Stop the run's server (SIGTERM, then SIGKILL after ``timeout``); False when none was running."""
    job = jobs.read_job(serve_dir(run_id), JOB_FILE)
    if not jobs.alive(job):
        return False
    # marked before the signal: a server that ends now was stopped, not failed (server_status tells them apart)
    atomic_write_json(serve_dir(run_id) / JOB_FILE, {**job, "stopped": True})
    if not jobs.stop(job):
        return False
    end = time.monotonic() + timeout
    while jobs.alive(job) and time.monotonic() < end:
        time.sleep(0.1)
    if jobs.alive(job):
        import signal

        jobs.stop(job, signal.SIGKILL)
    return True
