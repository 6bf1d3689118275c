"""The workspace of DESIGN §2: safe ids, atomic writes, datasets and runs folders.

Layout under ``$ASSISTANT_FACTORY_HOME`` (default ``./workspace``)::

    models/<name>/      safetensors cache of converted base models
    datasets/<id>/      raw/, normalized.jsonl, splits/, quality.json, meta.json
    runs/<id>/          config.json, status.json, metrics.jsonl, train.log, checkpoints/, adapter/, eval/, export/
"""
from __future__ import annotations

import datetime as _dt
import json
import os
import re
import secrets
import tempfile
from pathlib import Path
from typing import Any, Iterator

from core.errors import UserError

MAX_ID_LEN = 100
_ID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._-]*$")
KINDS = ("models", "datasets", "runs", "labs")


def workspace_home() -> Path:
    """The workspace root: ``$ASSISTANT_FACTORY_HOME`` or ``./workspace``, created on first use."""
    root = Path(os.environ.get("ASSISTANT_FACTORY_HOME", "workspace")).expanduser().resolve()
    root.mkdir(parents=True, exist_ok=True)
    return root


def validate_id(value: str, what: str = "id") -> str:
    """Return ``value`` if it is a safe folder name; raise UserError saying why not otherwise."""
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"The {what} is empty. Use letters, digits, '.', '_' or '-', e.g. 'support-faq-v1'.")
    if len(value) > MAX_ID_LEN:
        raise UserError(f"The {what} is {len(value)} characters long; the limit is {MAX_ID_LEN}. Choose a shorter name.")
    if value.startswith(("/", "\\")) or re.match(r"^[A-Za-z]:", value):
        raise UserError(f"The {what} {value!r} is an absolute path; give a plain name such as 'support-faq-v1'.")
    if ".." in value or "/" in value or "\\" in value:
        raise UserError(f"The {what} {value!r} contains a path ('..' or a slash); give a plain name such as 'support-faq-v1'.")
    if not _ID_RE.match(value):
        raise UserError(f"The {what} {value!r} has characters other than letters, digits, '.', '_' and '-' "
                        f"(or starts with one of '.', '_', '-'); rename it, e.g. 'support-faq-v1'.")
    return value


def slugify(text: str, fallback: str = "item") -> str:
    """Turn free text (a file name, an assistant name) into a safe id fragment."""
    slug = re.sub(r"[^A-Za-z0-9._-]+", "-", text).strip("-._")[:40]
    return slug or fallback


def new_id(prefix: str) -> str:
    """A fresh, sortable id: ``<prefix>-YYYYmmdd-HHMMSS-<4 hex>``."""
    stamp = _dt.datetime.now().strftime("%Y%m%d-%H%M%S")
    return validate_id(f"{slugify(prefix)}-{stamp}-{secrets.token_hex(2)}")


def kind_dir(kind: str) -> Path:
    """``<workspace>/<kind>``, one of models, datasets, runs."""
    if kind not in KINDS:
        raise ValueError(f"unknown workspace kind {kind!r}; expected one of {KINDS}")
    # The model cache may live elsewhere (tests share one across temporary workspaces).
    override = os.environ.get("ASSISTANT_FACTORY_MODELS") if kind == "models" else None
    path = Path(override).expanduser().resolve() if override else workspace_home() / kind
    path.mkdir(parents=True, exist_ok=True)
    return path


def item_dir(kind: str, item_id: str, create: bool = False) -> Path:
    """The folder of one dataset/run/model, refusing ids that could escape the workspace."""
    base = kind_dir(kind)
    path = (base / validate_id(item_id, f"{kind[:-1]} id")).resolve()
    if path.parent != base.resolve():  # belt and braces: symlinks or odd names
        raise UserError(f"The id {item_id!r} points outside the workspace; give a plain name.")
    if create:
        path.mkdir(parents=True, exist_ok=True)
    return path


def dataset_dir(dataset_id: str, create: bool = False) -> Path:
    """``datasets/<id>``."""
    return item_dir("datasets", dataset_id, create)


def run_dir(run_id: str, create: bool = False) -> Path:
    """``runs/<id>``."""
    return item_dir("runs", run_id, create)


def list_ids(kind: str) -> list[str]:
    """Ids in a workspace kind, newest first (by folder modification time)."""
    base = kind_dir(kind)
    items = [p for p in base.iterdir() if p.is_dir() and _ID_RE.match(p.name)]
    return [p.name for p in sorted(items, key=lambda p: p.stat().st_mtime, reverse=True)]


# ---------------------------------------------------------------- atomic files
def atomic_write_bytes(path: str | os.PathLike, data: bytes) -> None:
    """Write ``data`` to a temp file beside ``path`` then rename: readers never see half a file."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    except BaseException:
        try:
            os.unlink(tmp)
        except FileNotFoundError:
            pass
        raise


def atomic_write_text(path: str | os.PathLike, text: str) -> None:
    """Atomic UTF-8 text write."""
    atomic_write_bytes(path, text.encode("utf-8"))


def atomic_write_json(path: str | os.PathLike, obj: Any) -> None:
    """Atomic JSON write (UTF-8, indented, non-ASCII kept readable)."""
    atomic_write_text(path, json.dumps(obj, indent=2, ensure_ascii=False, default=str) + "\n")


def read_json(path: str | os.PathLike, default: Any = None) -> Any:
    """Read a JSON file, or ``default`` when it does not exist."""
    try:
        return json.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        return default


def append_jsonl(path: str | os.PathLike, record: dict) -> None:
    """Append one JSON record as one line in a single write, so a reader never sees half a record."""
    line = json.dumps(record, ensure_ascii=False, default=str) + "\n"
    with open(path, "a", encoding="utf-8") as fh:
        fh.write(line)
        fh.flush()


def read_jsonl(path: str | os.PathLike) -> Iterator[dict]:
    """Yield complete JSON lines; a trailing partial line (a writer mid-append) is skipped."""
    try:
        with open(path, encoding="utf-8") as fh:
            for line in fh:
                if not line.endswith("\n"):
                    break
                line = line.strip()
                if line:
                    yield json.loads(line)
    except FileNotFoundError:
        return


# ---------------------------------------------------------------- training runs: launch, stop, status, lock
# (DESIGN §5) The trainer runs as `python -m core train` in its own session, output to train.log, never a pipe.
# One training run per workspace at a time: the child holds an flock on runs/.train.lock while it trains (the
# kernel drops it if the process dies, so a crash never leaves a stale lock); a second child waits "queued".
ACTIVE_STATES = ("queued", "running", "stopping")
FINAL_STATES = ("stopped", "failed", "completed")
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
