"""The one job runner: a ``python -m core <verb> ...`` process in the background, for training runs, evaluations and
labs alike.

A job lives in a folder: ``job.json`` (pid and the process's start ticks), a log file the child's output is appended
to, and a status/progress JSON file the child writes and callers poll (progress travels one way only: from the
child, through that file). Liveness compares the process's START TICKS (field 22 of ``/proc/<pid>/stat``, clock
ticks since boot): they never change for a process and are immune to wall-clock steps, and a later process that
reuses the pid has other ticks. Wall-clock start times (``psutil.create_time()``) move with the clock, so a clock
step (NTP, suspend) would make a live job look dead or a reused pid look alive.
"""
from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any, Callable, Mapping, Optional

from core.errors import CorruptFileError
from core.fileio import atomic_write_json, read_json
from core.workspace import repo_root, workspace_home

JOB_FILE = "job.json"
LOG_TAIL_LINES = 20
_CHILDREN: dict[int, subprocess.Popen] = {}  # pid -> Popen, polled by reap() so no child stays a zombie


def _stat_fields(pid: int) -> Optional[list[str]]:
    """Fields 3.. of ``/proc/<pid>/stat`` (after the command name, which may contain spaces and parentheses)."""
    try:
        text = Path(f"/proc/{int(pid)}/stat").read_text(encoding="utf-8", errors="replace")
    except (OSError, ValueError):
        return None
    return text[text.rfind(")") + 2:].split()


def start_ticks(pid: Any) -> Optional[int]:
    """Process ``pid``'s start time in clock ticks since boot (None when there is no such process)."""
    if not isinstance(pid, int) or isinstance(pid, bool) or pid <= 0:
        return None
    fields = _stat_fields(pid)
    return int(fields[19]) if fields and len(fields) > 19 else None  # field 22 overall; fields[0] is field 3


def reap() -> None:
    """Collect the exit status of finished children started here (no zombies in a long-lived server)."""
    for pid, proc in list(_CHILDREN.items()):
        if proc.poll() is not None:
            _CHILDREN.pop(pid, None)


def alive(job: Optional[Mapping]) -> bool:
    """True when the job's process runs (not a zombie) and is the same process (same start ticks) that was recorded."""
    reap()
    if not job:
        return False
    pid = job.get("pid")
    now = start_ticks(pid)
    if now is None:
        return False
    fields = _stat_fields(pid)
    if not fields or fields[0] in ("Z", "X"):  # exited, waiting to be reaped by its parent
        return False
    recorded = job.get("start_ticks")
    if isinstance(recorded, int) and not isinstance(recorded, bool):
        return recorded == now
    return True  # a record without ticks (written by an older version): the pid alone is all we know


def spawn(folder: str | os.PathLike, verb: str, args: list[str], log_name: str = "job.log",
          job_file: str = JOB_FILE, extra: Optional[dict] = None) -> dict:
    """Start ``python -m core <verb> <args>`` detached and record it in ``folder/job_file`` (see spawn_command)."""
    return spawn_command(folder, [sys.executable, "-m", "core", verb, *args], log_name, job_file,
                         {"verb": verb, "args": list(args), **(extra or {})})


def spawn_command(folder: str | os.PathLike, argv: list[str], log_name: str = "job.log", job_file: str = JOB_FILE,
                  extra: Optional[dict] = None) -> dict:
    """Start ``argv`` detached (own session, stdin /dev/null, output appended to ``folder/log_name``, this
    workspace passed on), record ``folder/job_file`` and return that record (pid, start_ticks, ...)."""
    folder = Path(folder)
    folder.mkdir(parents=True, exist_ok=True)
    env = {**os.environ, "ASSISTANT_FACTORY_HOME": str(workspace_home()), "PYTHONUNBUFFERED": "1"}
    with open(folder / log_name, "ab") as log:
        proc = subprocess.Popen(argv, cwd=str(repo_root()), stdin=subprocess.DEVNULL, stdout=log,
                                stderr=subprocess.STDOUT, start_new_session=True, env=env)
    _CHILDREN[proc.pid] = proc
    job = {"pid": proc.pid, "start_ticks": start_ticks(proc.pid), "log": log_name,
           "started_at": time.time(), **(extra or {})}  # started_at: for display only, never for liveness
    atomic_write_json(folder / job_file, job)
    return job


def wait(job: Mapping, poll_s: float = 0.5) -> Optional[int]:
    """Wait until the job's process ends; its exit code when it is a child of this process, else None."""
    proc = _CHILDREN.get(job.get("pid"))  # an unreaped child keeps its pid, so this is the job's own process
    if proc is not None:
        code = proc.wait()
        _CHILDREN.pop(proc.pid, None)
        return code
    while alive(job):
        time.sleep(poll_s)
    return None


def read_job(folder: str | os.PathLike, job_file: str = JOB_FILE) -> Optional[dict]:
    """The job record in ``folder`` (None when there is none; CorruptFileError when it is damaged)."""
    job = read_json(Path(folder) / job_file, None)
    return job if isinstance(job, dict) else None


def stop(job: Optional[Mapping], sig: int = signal.SIGTERM) -> bool:
    """Send ``sig`` to the job's process group (its own process only when it does not lead a group); False when
    the job is not running (a pid now used by another process is never signalled)."""
    if not alive(job):
        return False
    pid = int(job["pid"])
    try:
        if os.getpgid(pid) == pid:  # our jobs lead their own session: signal the whole group (torchrun workers too)
            os.killpg(pid, sig)
        else:  # started some other way (a terminal, a torchrun worker): signal only that process
            os.kill(pid, sig)
    except ProcessLookupError:
        return False
    return True


def log_tail(path: str | os.PathLike, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of a log file (only its last 64 KiB are read); "" when there is none."""
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except (FileNotFoundError, IsADirectoryError):
        return ""
    return "\n".join(text.splitlines()[-lines:])


def own_record() -> dict:
    """``{"pid", "start_ticks"}`` of this process, for status files a child writes about itself."""
    return {"pid": os.getpid(), "start_ticks": start_ticks(os.getpid())}


def write_progress(path: str | os.PathLike, state: str, fraction: float, message: str, **extra: Any) -> None:
    """Write a job's status/progress file (the child's side): state, fraction 0..1, message, and who wrote it."""
    atomic_write_json(path, {"state": state, "fraction": float(fraction), "message": str(message),
                             **own_record(), **extra})


def progress_writer(path: str | os.PathLike, every: float = 0.01) -> Callable[[float, str], None]:
    """A ``progress(fraction, message)`` callback writing ``path`` at most every ``every`` of progress."""
    last = {"fraction": -1.0}

    def progress(fraction: float, message: str) -> None:
        if fraction - last["fraction"] >= every or fraction >= 1.0:
            last["fraction"] = fraction
            write_progress(path, "running", fraction, message)
    return progress


def read_progress(path: str | os.PathLike, job: Optional[Mapping]) -> Optional[dict]:
    """The progress file written by ``job``'s own process (None when absent or written by another process)."""
    progress = read_json(path, None)
    if not isinstance(progress, dict) or not job:
        return None
    if progress.get("pid") != job.get("pid") or progress.get("start_ticks") != job.get("start_ticks"):
        return None
    return progress


def job_state(folder: str | os.PathLike, job_file: str = JOB_FILE, progress_file: str = "progress.json") -> dict:
    """``{"state": idle|running|done|failed, "fraction", "message"}`` of the latest job recorded in ``folder``, with
    its record (``"job"``) and its own process's progress file (``"progress"``) when there is one."""
    try:
        job = read_job(folder, job_file)
        progress = (read_progress(Path(folder) / progress_file, job) if job else None) or {}
    except CorruptFileError as exc:
        return {"state": "failed", "fraction": 0.0, "message": str(exc)}
    if not job:
        return {"state": "idle", "fraction": 0.0, "message": ""}
    out = {"fraction": float(progress.get("fraction") or 0.0), "message": str(progress.get("message") or ""),
           "job": job, "progress": progress}
    if progress.get("state") == "done":
        return {**out, "state": "done", "fraction": 1.0}
    running = progress.get("state") != "failed" and alive(job)
    return {**out, "state": "running" if running else "failed"}
