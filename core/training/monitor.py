"""What the UI reads about a run: ``metrics.jsonl`` (appended line by line) and ``status.json`` (atomic, with heartbeat).

Formats::

    metrics.jsonl  {"step", "epoch", "loss", "lr", "grad_norm", "tokens_per_s", "elapsed_s", "eta_s", "peak_mem_mb"}
                   {"step", "epoch", "eval_loss", "eval_ppl", "eval_examples"}
                   {"step", "epoch", "skipped": true, "reason"}      a non-finite step that was not applied
    status.json    {"state", "pid", "step", "total_steps", "heartbeat", "error", "failure": {"code", "params"},
                    "phase": "train"|"eval", "eval_batch", "eval_batches", "eta_s", "slow": {...},
                    "notes": [{"code", "params"}], ...}

Only the main process (rank 0) writes; other ranks get a monitor with ``enabled=False``.
"""
from __future__ import annotations

import math
import os
import resource
import threading
import time
from collections import deque
from pathlib import Path
from typing import Any, Iterable, Optional

import torch

from core.cpuload import OtherLoad
from core.training.config import PREFERENCE_METRICS  # noqa: F401 - a preference step's extra metrics.jsonl fields
from core.fileio import append_jsonl, atomic_write_json, atomic_write_text, read_json, read_jsonl

HEARTBEAT_S = 2.0
RECENT_STEPS = 20     # the ETA's step time is the mean of this many recent steps
SLOW_RATIO = 1.5      # measured / expected step time above which status.json says "slow"
SLOW_MIN_STEPS = 3    # the first steps warm up caches and allocators: judge speed after these


def _own_start_time():
    from core.runs import process_start_time

    return process_start_time(os.getpid())


_START_TIME = _own_start_time()  # lets core.runs.status() detect a pid reused by another process


def peak_memory_mb(device: Optional[torch.device] = None) -> float:
    """Peak memory of this process: CUDA allocator peak on a GPU, peak resident set size on CPU."""
    if device is not None and device.type == "cuda":
        return torch.cuda.max_memory_allocated(device) / 2**20
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024  # Linux reports KiB


class TrainingMetrics:
    """Throughput and ETA: tokens/s counts real (non-pad) tokens; ETA counts the steps AND validations left."""

    def __init__(self, total_steps: int, start_step: int = 0, elapsed_before: float = 0.0,
                 eval_steps: Iterable[int] = ()):
        self.total_steps, self.start_step = total_steps, start_step
        self.elapsed_before = elapsed_before  # time spent before a resume, so elapsed_s keeps growing
        self.eval_steps = sorted(eval_steps)  # steps after which a validation pass runs
        self.t0 = time.perf_counter()
        self.last_t = self.t0
        self.step_times: deque[float] = deque(maxlen=RECENT_STEPS)
        self.steps_timed = 0
        self.eval_pass_s: Optional[float] = None  # a full validation pass, measured

    @property
    def elapsed(self) -> float:
        """Seconds of training so far, across resumes."""
        return self.elapsed_before + time.perf_counter() - self.t0

    def step_time(self) -> Optional[float]:
        """Seconds per optimizer step over the recent steps (evaluations and checkpoints excluded)."""
        return sum(self.step_times) / len(self.step_times) if self.step_times else None

    def record_eval(self, seconds: float, fraction: float) -> None:
        """A validation pass over ``fraction`` of the validation set took ``seconds``."""
        if fraction > 0:
            self.eval_pass_s = seconds / fraction
        self.last_t = time.perf_counter()

    def eta(self, step: int) -> Optional[float]:
        """Seconds left: remaining steps x recent step time + remaining validations x measured pass time."""
        per_step = self.step_time()
        if per_step is None:
            return None
        evals_left = sum(1 for s in self.eval_steps if s > step)
        return round(per_step * max(self.total_steps - step, 0) + evals_left * (self.eval_pass_s or 0.0), 1)

    def record(self, step: int, epoch: float, loss: float, lr: float, grad_norm: float, tokens: int,
               device: Optional[torch.device] = None) -> dict:
        """One metrics line for optimizer step ``step`` (1-based), ``tokens`` real tokens processed in it."""
        now = time.perf_counter()
        dt, self.last_t = max(now - self.last_t, 1e-9), now
        self.step_times.append(dt)
        self.steps_timed += 1
        return {"step": step, "epoch": round(epoch, 4), "loss": loss, "lr": lr, "grad_norm": grad_norm,
                "tokens_per_s": round(tokens / dt, 1), "elapsed_s": round(self.elapsed, 3),
                "eta_s": self.eta(step), "peak_mem_mb": round(peak_memory_mb(device), 1)}

    def mark(self) -> None:
        """Restart the per-step clock (after an eval or a checkpoint, so they do not count as step time)."""
        self.last_t = time.perf_counter()


class SlowCheck:
    """Steps slower than 1.5x the strategy's expectation: by how much, and how busy the rest of the machine is."""

    def __init__(self, expected_step_s: Optional[float], min_steps: int = SLOW_MIN_STEPS):
        self.expected = expected_step_s if expected_step_s and expected_step_s > 0 else None
        self.min_steps = min_steps
        self.load = OtherLoad()

    def check(self, measured_step_s: Optional[float], steps: int) -> Optional[dict]:
        """``{"ratio", "expected_step_s", "measured_step_s", "other_cpu_pct"}`` when slow, else None."""
        if self.expected is None or measured_step_s is None or steps < self.min_steps:
            return None
        ratio = measured_step_s / self.expected
        if ratio <= SLOW_RATIO:
            return None
        return {"ratio": round(ratio, 2), "expected_step_s": self.expected,
                "measured_step_s": round(measured_step_s, 3), "other_cpu_pct": round(100 * self.load.share(), 1)}


class TrainingMonitor:
    """Writes metrics lines and keeps ``status.json`` fresh from a heartbeat thread."""

    def __init__(self, run_dir: str | Path, enabled: bool = True, heartbeat_s: float = HEARTBEAT_S):
        self.run_dir = Path(run_dir)
        self.enabled = enabled
        self.heartbeat_s = heartbeat_s
        self.metrics_path = self.run_dir / "metrics.jsonl"
        self.status_path = self.run_dir / "status.json"
        self._status: dict[str, Any] = {}
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._thread: Optional[threading.Thread] = None
        self.stop_requested = False  # set from the trainer's signal handler (no locking there: a plain flag)

    # ------------------------------------------------------------ status
    def update(self, **fields: Any) -> None:
        """Merge ``fields`` into the status and write it now."""
        if not self.enabled:
            return
        with self._lock:
            self._status.update(fields)
            self._write_locked()

    def _write_locked(self) -> None:
        status = dict(self._status)
        status["pid"] = os.getpid()
        status["pid_started"] = _START_TIME
        status["heartbeat"] = time.time()
        if status.get("state") == "running":
            # A signal seen by the trainer (stop_requested), or core.runs.stop() marking "stopping" from another
            # process: show "stopping" until the final state, never flip back to "running".
            on_disk = read_json(self.status_path, {}) or {}
            if self.stop_requested or (on_disk.get("state") == "stopping" and on_disk.get("pid") == os.getpid()):
                status["state"] = "stopping"
        atomic_write_json(self.status_path, status)

    def start_heartbeat(self) -> None:
        """Refresh status.json every ``heartbeat_s`` seconds on a daemon thread."""
        if not self.enabled or self._thread is not None:
            return
        self._stop.clear()
        self._thread = threading.Thread(target=self._beat, name="status-heartbeat", daemon=True)
        self._thread.start()

    def _beat(self) -> None:
        while not self._stop.wait(self.heartbeat_s):
            with self._lock:
                try:
                    self._write_locked()
                except OSError:  # a full disk must not kill training; the next beat retries
                    pass

    def stop_heartbeat(self) -> None:
        """Stop the heartbeat thread (before writing the final state)."""
        self._stop.set()
        if self._thread is not None:
            self._thread.join(timeout=5)
            self._thread = None

    def finish(self, state: str, error: Optional[str] = None, **fields: Any) -> None:
        """Write a final state (completed/stopped/failed) and stop the heartbeat."""
        self.stop_heartbeat()
        self.update(state=state, error=error, state_detail=None, **fields)

    # ------------------------------------------------------------ metrics
    def log(self, record: dict) -> None:
        """Append one metrics line."""
        if self.enabled:
            append_jsonl(self.metrics_path, _finite(record))

    @staticmethod
    def eval_record(step: int, epoch: float, eval_loss: float) -> dict:
        """An eval line: loss and perplexity."""
        ppl = math.exp(eval_loss) if eval_loss < 50 else float("inf")
        return {"step": step, "epoch": round(epoch, 4), "eval_loss": eval_loss, "eval_ppl": ppl}

    def log_eval(self, step: int, epoch: float, eval_loss: float) -> dict:
        """Append an eval line with loss and perplexity."""
        record = self.eval_record(step, epoch, eval_loss)
        self.log(record)
        return record

    def truncate_after(self, step: int) -> None:
        """Drop metrics lines past ``step`` (written by a process killed after its last checkpoint)."""
        if not self.enabled or not self.metrics_path.exists():
            return
        import json

        keep = [r for r in read_jsonl(self.metrics_path) if r.get("step", 0) <= step]
        atomic_write_text(self.metrics_path, "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in keep))


def _finite(record: dict) -> dict:
    """JSON has no NaN/Infinity: write non-finite floats as null plus a readable string."""
    out = {}
    for k, v in record.items():
        if isinstance(v, float) and not math.isfinite(v):
            out[k] = None
            out[f"{k}_str"] = str(v)
        else:
            out[k] = v
    return out
