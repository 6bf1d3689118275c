"""Training runs: launch, resume, stop, status and the one-run-at-a-time lock (docs/architecture.md)."""
from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Optional

from core import jobs
from core.defaults import ACTIVE_STATES, DAMAGED_STATE
from core.errors import CorruptFileError, UserError
from core.fileio import atomic_write_json, read_json
from core.workspace import kind_dir, list_ids, new_id, reserve_dir, run_dir, validate_id

# ---------------------------------------------------------------- training runs: launch, stop, status, lock
# The trainer runs as `python -m core train` through core.jobs (own session, output appended to train.log).
# One training run per workspace at a time: the child holds an flock on runs/.train.lock while it trains (the
# kernel drops it if the process dies, so a crash never leaves a stale lock); a second child waits "queued".
TRAIN_LOCK = ".train.lock"
STOP_REQUEST = "stop.request"  # written by stop() BEFORE signalling, so a process killed before its handler is "stopped"
LOG_TAIL_LINES = 20


def process_start_time(pid: int) -> Optional[int]:
    """Process ``pid``'s start ticks (see core.jobs): what status.json's ``pid_started`` records, to tell the
    trainer apart from a later process reusing its pid, whatever the wall clock does."""
    return jobs.start_ticks(pid)


def _record(st: dict) -> dict:
    """The liveness record (pid, start ticks) of the process a status.json names."""
    return {"pid": st.get("pid"), "start_ticks": st.get("pid_started")}


def log_tail(run_id: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``runs/<id>/train.log``."""
    return jobs.log_tail(run_dir(run_id) / "train.log", lines)


def _absolute_data(cfg: dict) -> dict:
    """Make a relative data path absolute (resolved from the current folder) so the run works from anywhere."""
    data = cfg.get("data")
    if isinstance(data, str) and data and not Path(data).is_absolute() and Path(data).exists():
        cfg = {**cfg, "data": str(Path(data).resolve())}
    return cfg


def spawn_trainer(run_id: str) -> dict:
    """Start ``python -m core train --resume <id>`` on a run folder holding config.json; returns the job record
    (``pid``, ``start_ticks``; see core.jobs). launch() and resume() use it; so does a lab that trains in order."""
    folder = run_dir(run_id)
    (folder / STOP_REQUEST).unlink(missing_ok=True)  # a request meant for an earlier process of this run
    job = jobs.spawn(folder, "train", ["--resume", run_id], log_name="train.log")
    try:
        current = read_json(folder / "status.json", {}) or {}
    except CorruptFileError:
        current = {}
    if current.get("pid") != job["pid"]:  # unless the child already wrote its own status
        atomic_write_json(folder / "status.json", {
            "state": "queued", "pid": job["pid"], "pid_started": job["start_ticks"], "step": None,
            "total_steps": None, "heartbeat": time.time(), "error": None, "run_id": run_id})
    return job


def launch(config: dict, run_id: str | None = None) -> str:
    """Validate a run config, write ``runs/<id>/config.json`` in a NEW folder and start the trainer; returns the id."""
    from core.training.config import TrainingConfig

    cfg = TrainingConfig.from_dict(_absolute_data(dict(config)))
    rid = validate_id(run_id, "run id") if run_id else new_id(cfg.name or f"{cfg.method}-run", kind="runs")
    folder = reserve_dir("runs", rid)  # refuses an existing folder, even one without config.json
    atomic_write_json(folder / "config.json", cfg.to_dict())
    spawn_trainer(rid)
    return rid


def resume(run_id: str) -> str:
    """Start a trainer that continues ``run_id`` from its last checkpoint; returns the run id."""
    folder = run_dir(run_id)
    if not isinstance(read_json(folder / "config.json", None), dict):  # a damaged file raises CorruptFileError
        raise UserError(f"There is no run {run_id!r} in this workspace (no config.json); check the id with list_runs().")
    st = status(run_id)
    if st.get("state") in ACTIVE_STATES:
        raise UserError(f"The run {run_id!r} is still {st['state']}; stop it first or wait for it to end.")
    spawn_trainer(run_id)
    return run_id


def stop_requested(run_id: str, pid: Any = None) -> bool:
    """True when stop() asked the process ``pid`` (any process when None) of this run to stop."""
    try:
        request = read_json(run_dir(run_id) / STOP_REQUEST, None)
    except CorruptFileError:
        return True  # a request being there is what counts
    return isinstance(request, dict) and (pid is None or request.get("pid") == pid)


def stop(run_id: str) -> dict:
    """Ask a run to stop (SIGTERM: it finishes the step, checkpoints, ends "stopped"); returns its status."""
    st = status(run_id)
    if st.get("state") not in ACTIVE_STATES:
        return st
    folder = run_dir(run_id)
    atomic_write_json(folder / STOP_REQUEST, {**_record(st), "requested_at": time.time()})
    if st.get("holder") == "lab":  # waiting in a lab process that has not started it: nothing to signal
        st = {**st, "state": "stopped", "detail": "stopped while queued", "error": None}
        atomic_write_json(folder / "status.json", st)
        return st
    if not jobs.stop(_record(st)):
        return status(run_id)
    return {**st, "state": "stopping"}


def _damaged(run_id: str, exc: Exception) -> dict:
    """The status of a run whose own files cannot be read."""
    return {"state": DAMAGED_STATE, "run_id": run_id, "pid": None, "step": None, "total_steps": None,
            "heartbeat": None, "error": str(exc)}


def _read_status(run_id: str) -> dict:
    """status.json as written (state "unknown" when absent); CorruptFileError when it is damaged."""
    st = read_json(run_dir(run_id) / "status.json")
    if st is None:
        return {"state": "unknown", "run_id": run_id, "pid": None, "step": None, "total_steps": None,
                "heartbeat": None, "error": "no status.json yet"}
    if not isinstance(st, dict):
        raise CorruptFileError(f"The file {run_dir(run_id) / 'status.json'} is damaged (not a JSON object). "
                               "Delete it; the run's checkpoints are kept and it can be resumed.")
    return st


def _ended(run_id: str, st: dict) -> dict:
    """The final state of a run whose process is gone without writing one: stopped if asked to, else failed."""
    if stop_requested(run_id, st.get("pid")):
        return {**st, "state": "stopped", "error": None, "detail": "the process ended after a stop request"}
    return {**st, "state": "failed",
            "error": "The training process ended without saving a final state (killed, out of memory or "
                     "crashed). Last lines of train.log:\n" + log_tail(run_id)}


def status(run_id: str) -> dict:
    """A run's status: ``status.json``, with the process's liveness checked (a dead run ends "failed" with the log
    tail, or "stopped" when a stop was requested) and state "damaged" when its files cannot be read."""
    folder = run_dir(run_id)
    try:
        st = _read_status(run_id)
        if st.get("state") in ACTIVE_STATES and not jobs.alive(_record(st)):
            st = _read_status(run_id)  # it may have written its final state just before exiting
            if st.get("state") in ACTIVE_STATES and not jobs.alive(_record(st)):
                st = _ended(run_id, st)
                atomic_write_json(folder / "status.json", st)
        read_json(folder / "config.json")  # a damaged config makes the run unusable: say so here too
    except CorruptFileError as exc:
        return _damaged(run_id, exc)
    if st.get("state") in ACTIVE_STATES and st["state"] != "stopping" and stop_requested(run_id, st.get("pid")):
        st = {**st, "state": "stopping"}  # shown, not written: the trainer writes its own final state
    return st


def list_runs() -> list[dict]:
    """Every run (newest first) with its status and a config summary; a damaged run is listed as "damaged"."""
    out = []
    for rid in list_ids("runs"):
        st = status(rid)
        try:
            cfg = read_json(run_dir(rid) / "config.json", {}) or {}
        except CorruptFileError:
            cfg = {}
        cfg = cfg if isinstance(cfg, dict) else {}
        out.append({**st, "run_id": rid, "method": cfg.get("method"), "model": cfg.get("model"),
                    "data": cfg.get("data"), "name": cfg.get("name")})
    return out


class TrainingLock:
    """The workspace's one-training-run-at-a-time lock (an flock on runs/.train.lock, holder's pid inside).

    A raw flock rather than core.fileio.file_lock: the kernel drops it the moment the holder dies (even SIGKILL), so
    a killed trainer never blocks the queue, and the file keeps the holder's pid for "queued behind pid N" (filelock
    truncates the file when it opens it, which would erase that pid whenever a second run tries the lock).
    """

    def __init__(self) -> None:
        self.path = kind_dir("runs") / TRAIN_LOCK
        self._fd: int | None = None

    def try_acquire(self) -> bool:
        """Take the lock if free; True on success."""
        import fcntl

        fd = os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            os.close(fd)
            return False
        os.ftruncate(fd, 0)
        os.write(fd, str(os.getpid()).encode())
        self._fd = fd
        return True

    def acquire(self, should_abort=lambda: False, on_wait=lambda holder: None, poll_s: float = 1.0) -> bool:
        """Wait for the lock (calling ``on_wait(holder_pid)`` once); False when ``should_abort()`` became true."""
        import time

        waited = False
        while not self.try_acquire():
            if not waited:
                on_wait(self.holder())
                waited = True
            if should_abort():
                return False
            time.sleep(poll_s)
        return True

    def holder(self) -> int | None:
        """Pid written by the current holder (informational)."""
        try:
            return int(self.path.read_text().strip() or 0) or None
        except (OSError, ValueError):
            return None

    def release(self) -> None:
        """Drop the lock."""
        if self._fd is not None:
            import fcntl

            fcntl.flock(self._fd, fcntl.LOCK_UN)
            os.close(self._fd)
            self._fd = None
