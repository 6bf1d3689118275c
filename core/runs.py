"""Training runs: launch, resume, stop, status and the one-run-at-a-time lock (docs/architecture.md)."""
from __future__ import annotations

import os
from pathlib import Path
from typing import Any

from core.defaults import ACTIVE_STATES
from core.errors import UserError
from core.fileio import atomic_write_json, read_json
from core.workspace import kind_dir, list_ids, new_id, run_dir, validate_id, workspace_home

# ---------------------------------------------------------------- training runs: launch, stop, status, lock
# (DESIGN §5) The trainer runs as `python -m core train` in its own session, output to train.log, never a pipe.
# One training run per workspace at a time: the child holds an flock on runs/.train.lock while it trains (the
# kernel drops it if the process dies, so a crash never leaves a stale lock); a second child waits "queued".
TRAIN_LOCK = ".train.lock"
LOG_TAIL_LINES = 20
_CHILDREN: dict = {}  # run id -> Popen, so status() can reap finished children (no zombies in a long-lived app)


def _repo_root() -> Path:
    return Path(__file__).resolve().parents[1]


def process_start_time(pid: int) -> float | None:
    """When process ``pid`` started (epoch seconds), to tell it apart from a later process reusing the pid."""
    try:
        import psutil

        return psutil.Process(pid).create_time()
    except Exception:  # noqa: BLE001 - gone, no access, or no psutil
        return None


def _pid_alive(pid: Any, started: Any = None) -> bool:
    """True when ``pid`` is a running (not zombie) process, and the same one that started at ``started``."""
    if not isinstance(pid, int) or pid <= 0:
        return False
    try:
        import psutil

        proc = psutil.Process(pid)
        if isinstance(started, (int, float)) and abs(proc.create_time() - started) > 1.0:
            return False  # the pid now belongs to another process
        return proc.status() != psutil.STATUS_ZOMBIE
    except ImportError:  # pragma: no cover - psutil is a requirement; plain fallback
        try:
            os.kill(pid, 0)
            return True
        except OSError:
            return False
    except Exception:  # noqa: BLE001 - NoSuchProcess, AccessDenied...
        return False


def log_tail(run_id: str, lines: int = LOG_TAIL_LINES) -> str:
    """The last ``lines`` lines of ``runs/<id>/train.log``."""
    path = run_dir(run_id) / "train.log"
    try:
        with open(path, "rb") as fh:
            fh.seek(0, os.SEEK_END)
            fh.seek(max(0, fh.tell() - 64 * 1024))
            text = fh.read().decode("utf-8", errors="replace")
    except FileNotFoundError:
        return ""
    return "\n".join(text.splitlines()[-lines:])


def _absolute_data(cfg: dict) -> dict:
    """Make a relative data path absolute (resolved from the current folder) so the run works from anywhere."""
    data = cfg.get("data")
    if isinstance(data, str) and data and not Path(data).is_absolute() and Path(data).exists():
        cfg = {**cfg, "data": str(Path(data).resolve())}
    return cfg


def _spawn(run_id: str, extra_args: list[str]) -> int:
    """Start ``python -m core train ...`` for a run in its own session; returns the child's pid."""
    import subprocess
    import sys
    import time

    folder = run_dir(run_id)
    env = dict(os.environ)
    env["ASSISTANT_FACTORY_HOME"] = str(workspace_home())  # the child must use this same workspace
    env["PYTHONUNBUFFERED"] = "1"
    with open(folder / "train.log", "ab") as log:
        proc = subprocess.Popen([sys.executable, "-m", "core", "train", *extra_args], cwd=str(_repo_root()),
                                stdin=subprocess.DEVNULL, stdout=log, stderr=subprocess.STDOUT,
                                start_new_session=True, env=env)
    _CHILDREN[run_id] = proc
    atomic_write_json(folder / "status.json", {"state": "queued", "pid": proc.pid,
                                               "pid_started": process_start_time(proc.pid), "step": None,
                                               "total_steps": None, "heartbeat": time.time(), "error": None,
                                               "run_id": run_id})
    return proc.pid


def launch(config: dict, run_id: str | None = None) -> str:
    """Validate a run config, write ``runs/<id>/config.json`` and start the trainer process; returns the run id."""
    from core.training.config import TrainingConfig

    cfg = TrainingConfig.from_dict(_absolute_data(dict(config)))
    rid = validate_id(run_id, "run id") if run_id else new_id(cfg.name or f"{cfg.method}-run")
    folder = run_dir(rid)
    if (folder / "config.json").exists():
        raise UserError(f"The run {rid!r} already exists; resume it with resume({rid!r}) or choose another id.")
    folder.mkdir(parents=True, exist_ok=True)
    atomic_write_json(folder / "config.json", cfg.to_dict())
    _spawn(rid, ["--config", str(folder / "config.json"), "--run-id", rid])
    return rid


def resume(run_id: str) -> str:
    """Start a trainer that continues ``run_id`` from its last checkpoint; returns the run id."""
    folder = run_dir(run_id)
    if not (folder / "config.json").exists():
        raise UserError(f"There is no run {run_id!r} in this workspace (no config.json); check the id with list_runs().")
    st = status(run_id)
    if st.get("state") in ACTIVE_STATES:
        raise UserError(f"The run {run_id!r} is still {st['state']}; stop it first or wait for it to end.")
    _spawn(run_id, ["--resume", run_id])
    return run_id


def stop(run_id: str) -> dict:
    """Ask a run to stop (SIGTERM: it finishes the step, checkpoints, ends "stopped"); returns its status."""
    import signal

    st = status(run_id)
    pid = st.get("pid")
    if st.get("state") not in ACTIVE_STATES or not _pid_alive(pid, st.get("pid_started")):
        return st
    try:
        if os.getpgid(pid) == pid:  # our child leads its own session: signal the whole group (torchrun workers too)
            os.killpg(pid, signal.SIGTERM)
        else:  # started some other way (a terminal, torchrun worker): signal only that process
            os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return status(run_id)
    st = {**st, "state": "stopping"}
    atomic_write_json(run_dir(run_id) / "status.json", st)
    return st


def status(run_id: str) -> dict:
    """``status.json`` of a run; a run whose process is gone without a final state is marked failed (log tail)."""
    folder = run_dir(run_id)
    proc = _CHILDREN.get(run_id)
    if proc is not None and proc.poll() is not None:
        _CHILDREN.pop(run_id, None)
    st = read_json(folder / "status.json")
    if st is None:
        return {"state": "unknown", "run_id": run_id, "pid": None, "step": None, "total_steps": None,
                "heartbeat": None, "error": "no status.json yet"}
    if st.get("state") in ACTIVE_STATES and not _pid_alive(st.get("pid"), st.get("pid_started")):
        st = read_json(folder / "status.json") or st  # it may have written its final state just before exiting
        if st.get("state") in ACTIVE_STATES and not _pid_alive(st.get("pid"), st.get("pid_started")):
            tail = log_tail(run_id)
            st = {**st, "state": "failed",
                  "error": "The training process ended without saving a final state (killed, out of memory or "
                           "crashed). Last lines of train.log:\n" + tail}
            atomic_write_json(folder / "status.json", st)
    return st


def list_runs() -> list[dict]:
    """Every run (newest first) with its status and a config summary."""
    out = []
    for rid in list_ids("runs"):
        cfg = read_json(run_dir(rid) / "config.json", {}) or {}
        out.append({**status(rid), "run_id": rid, "method": cfg.get("method"), "model": cfg.get("model"),
                    "data": cfg.get("data"), "name": cfg.get("name")})
    return out


class TrainingLock:
    """The workspace's one-training-run-at-a-time lock (an flock on runs/.train.lock, holder's pid inside)."""

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
