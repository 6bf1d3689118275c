"""``python -m core train --config RUN.yaml [--resume RUN_ID] [--run-id ID]`` (also under torchrun).

Prints the run id first on stdout (rank 0), then waits for the workspace training lock (state "queued"), then trains.
Exit codes: 0 completed or stopped, 1 failed, 2 bad config (every problem listed on stderr).
"""
from __future__ import annotations

import signal
import sys
import time
from pathlib import Path

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


def _check_fresh(folder: Path, run_id: str) -> None:
    if (folder / "metrics.jsonl").exists() or (folder / "checkpoints").exists():
        raise UserError(f"The run {run_id!r} already has training results; continue it with "
                        f"`python -m core train --resume {run_id}` or choose another --run-id.")


def train_command(args) -> int:
    """Entry point of the ``train`` verb."""
    from core.training import distributed as D

    cfg, run_id, resuming = _load_config(args)
    ctx = D.init_distributed(cfg.train.device)
    try:
        if run_id is None:
            run_id = D.broadcast_object(wsp.new_id(cfg.name or f"{cfg.method}-run") if ctx.is_main else None, ctx)
        folder = wsp.run_dir(run_id, create=ctx.is_main)
        if ctx.is_main:
            print(run_id, flush=True)
            if not resuming:
                _check_fresh(folder, run_id)
                cfg.save(folder / "config.json")
        lock = runs.TrainingLock() if ctx.is_main else None
        if lock is not None and not _wait_for_lock(lock, folder, run_id):
            return 0
        try:
            D.barrier(ctx)
            from core.training.trainer import AdvancedTrainer

            state = AdvancedTrainer(cfg, folder, resume=resuming, ctx=ctx, run_id=run_id).train()
        finally:
            if lock is not None:
                lock.release()
        if state == "failed" and ctx.is_main:
            print(f"error: the run failed: {(fileio.read_json(folder / 'status.json') or {}).get('error')}",
                  file=sys.stderr)
        return 0 if state in ("completed", "stopped") else 1
    finally:
        D.cleanup(ctx)


def _wait_for_lock(lock: "runs.TrainingLock", folder: Path, run_id: str) -> bool:
    """Hold the workspace lock (state "queued" while another run trains); False if stopped while queued."""
    import os

    aborted = {"flag": False}

    def on_term(_sig, _frame):
        aborted["flag"] = True

    old = signal.signal(signal.SIGTERM, on_term)

    def write(state: str, **extra) -> None:
        fileio.atomic_write_json(folder / "status.json", {
            "state": state, "pid": os.getpid(), "pid_started": runs.process_start_time(os.getpid()), "step": None,
            "total_steps": None, "heartbeat": time.time(), "error": None, "run_id": run_id, **extra})

    try:
        def on_wait(holder):
            print(f"another training run (pid {holder}) holds the workspace; queued until it ends", flush=True)
            write("queued", waiting_for_pid=holder)

        if lock.acquire(should_abort=lambda: aborted["flag"], on_wait=on_wait):
            return True
        write("stopped", detail="stopped while queued")
        print("stopped while queued", flush=True)
        return False
    finally:
        signal.signal(signal.SIGTERM, old)
