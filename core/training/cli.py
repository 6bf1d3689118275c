"""``python -m core train --config RUN.yaml [--resume RUN_ID] [--run-id ID]`` (also under torchrun).

Prints the run id first on stdout (rank 0), then waits for the workspace training lock (state "queued"), then trains.
``--run-id`` names a NEW run (an existing folder is refused); ``--resume ID`` continues a run from its last checkpoint,
or starts one whose folder was prepared (config.json written, never trained), as core.runs.launch does.
Exit codes: 0 completed or stopped, 1 failed, 2 bad config (every problem listed on stderr).
"""
from __future__ import annotations

import signal
import sys
import threading
import time
from pathlib import Path

# A stop (SIGTERM) may come in the first second: this handler goes in before anything heavy is imported or run, and
# hands the request on to the trainer once there is one (the trainer then installs its own handler).
_STOP: dict = {"flag": False, "trainer": None}


def _on_term(_sig, _frame) -> None:
    _STOP["flag"] = True
    if _STOP["trainer"] is not None:
        _STOP["trainer"].request_stop()


def _install_stop_handler():
    """Install the SIGTERM handler (main thread only: an in-process caller on another thread keeps its own)."""
    if threading.current_thread() is not threading.main_thread():
        return None
    return signal.signal(signal.SIGTERM, _on_term)


from core import fileio, runs
from core import workspace as wsp
from core.errors import UserError
from core.training.config import TrainingConfig


def _load_config(args) -> tuple[TrainingConfig, str | None, bool]:
    """(config, run id or None for a fresh id, resuming?)."""
    if args.resume:
        folder = wsp.run_dir(args.resume)
        if not (folder / "config.json").exists():
            raise UserError(f"There is no run {args.resume!r} to resume (no {folder / 'config.json'}); "
                            "check the id under workspace/runs/.")
        if args.config:
            print("note: --config is ignored with --resume; the run's saved config.json is used.", file=sys.stderr)
        return TrainingConfig.from_file(folder / "config.json"), args.resume, True
    if not args.config:
        raise UserError("Give a run config with --config RUN.yaml (or --resume RUN_ID to continue a run).")
    cfg = TrainingConfig.from_file(args.config)
    data = Path(cfg.data)
    if not data.is_absolute():
        for base in (Path.cwd(), Path(args.config).resolve().parent):  # relative to here, else to the config file
            if (base / data).exists():
                cfg.data = str((base / data).resolve())
                break
    return cfg, (wsp.validate_id(args.run_id, "run id") if args.run_id else None), False


def _reserve(run_id: str) -> Path:
    """The folder of a new run; an existing one is refused (its config and status are never overwritten)."""
    try:
        return wsp.reserve_dir("runs", run_id)
    except UserError:
        raise UserError(f"The run {run_id!r} already exists; continue it with `python -m core train --resume "
                        f"{run_id}` or choose another --run-id.") from None


def _stop_before_training(folder: Path, run_id: str, when: str) -> bool:
    """True (and status "stopped" written) when a stop came before the trainer started."""
    import os

    if not (_STOP["flag"] or runs.stop_requested(run_id, os.getpid())):
        return False
    _write_status(folder, run_id, "stopped", detail=f"stopped {when}")
    print(f"stopped {when}", flush=True)
    return True


def train_command(args) -> int:
    """Entry point of the ``train`` verb."""
    old_handler = _install_stop_handler()
    try:
        return _train(args)
    finally:
        _STOP.update(flag=False, trainer=None)
        if old_handler is not None:
            signal.signal(signal.SIGTERM, old_handler)


def _train(args) -> int:
    from core.training import distributed as D

    cfg, run_id, resuming = _load_config(args)
    ctx = D.init_distributed(cfg.train.device)
    try:
        if run_id is None:
            run_id = D.broadcast_object(wsp.new_id(cfg.name or f"{cfg.method}-run", kind="runs")
                                        if ctx.is_main else None, ctx)
        if ctx.is_main and not resuming:
            _reserve(run_id)
        folder = wsp.run_dir(run_id, create=ctx.is_main)
        if ctx.is_main:
            print(run_id, flush=True)
            if not resuming:
                cfg.save(folder / "config.json")
            if _stop_before_training(folder, run_id, "before it started"):
                return 0
        lock = runs.TrainingLock() if ctx.is_main else None
        if lock is not None and not _wait_for_lock(lock, folder, run_id):
            return 0
        try:
            D.barrier(ctx)
            from core.training.trainer import AdvancedTrainer

            trainer = AdvancedTrainer(cfg, folder, resume=resuming, ctx=ctx, run_id=run_id)
            _STOP["trainer"] = trainer
            if _STOP["flag"]:
                trainer.request_stop()
            state = trainer.train()
        finally:
            if lock is not None:
                lock.release()
        if state == "failed" and ctx.is_main:
            print(f"error: the run failed: {(fileio.read_json(folder / 'status.json') or {}).get('error')}",
                  file=sys.stderr)
        return 0 if state in ("completed", "stopped") else 1
    finally:
        D.cleanup(ctx)


def _write_status(folder: Path, run_id: str, state: str, **extra) -> None:
    """status.json of this process before the trainer writes its own (queued, or stopped before training)."""
    import os

    fileio.atomic_write_json(folder / "status.json", {
        "state": state, "pid": os.getpid(), "pid_started": runs.process_start_time(os.getpid()), "step": None,
        "total_steps": None, "heartbeat": time.time(), "error": None, "run_id": run_id, **extra})


def _wait_for_lock(lock: runs.TrainingLock, folder: Path, run_id: str) -> bool:
    """Hold the workspace lock (state "queued" while another run trains); False if stopped while queued."""
    def on_wait(holder):
        print(f"another training run (pid {holder}) holds the workspace; queued until it ends", flush=True)
        _write_status(folder, run_id, "queued", waiting_for_pid=holder)

    if lock.acquire(should_abort=lambda: _STOP["flag"], on_wait=on_wait):
        return True
    _write_status(folder, run_id, "stopped", detail="stopped while queued")
    print("stopped while queued", flush=True)
    return False
