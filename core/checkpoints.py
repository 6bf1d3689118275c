"""Training checkpoints: save atomically, verify before trusting, choose the newest good one, find usable weights.

A checkpoint is ``runs/<id>/checkpoints/step-N/`` holding safetensors + JSON only::

    peft.safetensors        the method's trainable tensors
    optimizer.safetensors   optimizer moments; optimizer.json its scalars
    rng.safetensors         torch/CUDA RNG states per rank; rng.json Python and NumPy RNG states
    trainer_state.json      step, total_steps, data position, counters

``verify`` reads every tensor (a truncated file fails there, not at resume), so resuming and the weights offered to
chat, evaluation and export never come from a damaged or NaN checkpoint.
"""
from __future__ import annotations

import contextlib
import errno
import os
import shutil
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Iterator, Optional

import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from core.errors import UserError
from core.fileio import atomic_write_json, read_json

CHECKPOINTS = "checkpoints"
WEIGHTS = "peft.safetensors"
OPTIMIZER = "optimizer.safetensors"
OPTIMIZER_META = "optimizer.json"
TRAINER_STATE = "trainer_state.json"
RNG = "rng.safetensors"
RNG_META = "rng.json"
ADAPTER = "adapter"
STATE_KEYS = ("step", "total_steps", "steps_per_epoch", "best_eval", "evals_without_improvement",
              "consecutive_nonfinite", "skipped_steps", "pending_eval", "elapsed_s")
_READ_ERRORS = (OSError, ValueError, RuntimeError, KeyError, TypeError, SafetensorError)
_DISK_FULL = (errno.ENOSPC, errno.EDQUOT)
_VERIFIED: dict[tuple, Optional[str]] = {}  # verify() results by (folder, file fingerprint)


class DiskFullError(UserError):
    """No space left to write run files; ``code`` is what status.json's ``failure`` records."""

    code = "disk_full"


@dataclass
class UsableWeights:
    """Weights of a run that chat, evaluation and export may load: the final adapter or a verified checkpoint."""

    path: Path
    step: int
    total_steps: Optional[int]
    final: bool

    def describe(self) -> str:
        """"final" or "as of step N of M" (English, for the CLI)."""
        if self.final:
            return "final"
        return f"as of step {self.step} of {self.total_steps if self.total_steps else '?'}"


# ---------------------------------------------------------------- listing
def step_dirs(run_dir: str | Path) -> list[tuple[int, Path]]:
    """``(N, checkpoints/step-N)`` oldest first; temp and set-aside folders (names starting with a dot) excluded."""
    root = Path(run_dir) / CHECKPOINTS
    out = [(int(p.name[5:]), p) for p in root.glob("step-*") if p.name[5:].isdigit() and p.is_dir()]
    return sorted(out)


def latest_checkpoint(run_dir: str | Path) -> Optional[Path]:
    """The ``checkpoints/step-N`` folder with the largest N (not verified), or None."""
    dirs = step_dirs(run_dir)
    return dirs[-1][1] if dirs else None


# ---------------------------------------------------------------- verification
def _tensors_problem(path: Path, what: str) -> Optional[str]:
    """None when every tensor of the safetensors file reads and is finite; else a problem code."""
    if not path.is_file():
        return f"{what}_missing"
    try:
        tensors = load_file(str(path))
    except _READ_ERRORS:
        return f"{what}_unreadable"
    if any(t.is_floating_point() and not torch.isfinite(t).all() for t in tensors.values()):
        return f"{what}_nonfinite"
    return None


def _fingerprint(step_dir: Path) -> tuple:
    """Names, sizes and modification times of a checkpoint's files: any rewrite changes it."""
    try:
        return tuple(sorted((p.name, st.st_size, st.st_mtime_ns) for p in step_dir.iterdir()
                            for st in [p.stat()]))
    except OSError:
        return ()


def verify(step_dir: str | Path) -> Optional[str]:
    """None when the checkpoint is whole and finite; else a problem code such as ``weights_unreadable``."""
    step_dir = Path(step_dir)
    # Reading every tensor of a full fine-tune takes seconds; pages ask often, the files rarely change.
    key = (str(step_dir.resolve()), _fingerprint(step_dir))
    if key not in _VERIFIED:
        if len(_VERIFIED) > 256:
            _VERIFIED.clear()
        _VERIFIED[key] = _verify(step_dir)
    return _VERIFIED[key]


def _json_problem(path: Path, what: str, required: tuple = ()) -> Optional[str]:
    """None when ``path`` is a JSON object with the ``required`` keys; else ``<what>_missing/_unreadable``."""
    try:
        obj = read_json(path)
    except _READ_ERRORS:
        return f"{what}_unreadable"
    if obj is None:
        return f"{what}_missing"
    if not isinstance(obj, dict) or any(k not in obj for k in required):
        return f"{what}_unreadable"
    return None


def _verify(step_dir: Path) -> Optional[str]:
    """The first problem of a checkpoint, reading weights first (they matter most), or None."""
    state = _json_problem(step_dir / TRAINER_STATE, "state", STATE_KEYS)
    if state is None and not isinstance(read_json(step_dir / TRAINER_STATE)["step"], int):
        state = "state_unreadable"
    return (_tensors_problem(step_dir / WEIGHTS, "weights") or state
            or _tensors_problem(step_dir / OPTIMIZER, "optimizer")
            or _json_problem(step_dir / OPTIMIZER_META, "optimizer")
            or _tensors_problem(step_dir / RNG, "rng") or _json_problem(step_dir / RNG_META, "rng"))


def choose(run_dir: str | Path) -> tuple[Optional[Path], list[dict]]:
    """The newest checkpoint that verifies, and ``[{"skipped": "step-N", "why": code}]`` for newer ones that did not."""
    skipped = []
    for _, path in reversed(step_dirs(run_dir)):
        problem = verify(path)
        if problem is None:
            return path, skipped
        skipped.append({"skipped": path.name, "why": problem})
    return None, skipped


# ---------------------------------------------------------------- saving
@contextlib.contextmanager
def disk_full_is_user_error(where: Path) -> Iterator[None]:
    """Turn "no space left on device" into a UserError that says to free space."""
    try:
        yield
    except OSError as exc:
        if exc.errno not in _DISK_FULL:
            raise
        raise DiskFullError(f"The disk is full: could not write {where}. Free some space (delete old runs or "
                            "models) and try again; a run resumes from its last complete checkpoint.") from exc


def save(root: Path, step: int, tensors: dict[str, dict], jsons: dict[str, object]) -> Path:
    """Write ``root/step-N`` atomically (temp folder, then rename); a full disk leaves no partial folder behind."""
    final = root / f"step-{step}"
    tmp = root / f".step-{step}.tmp-{os.getpid()}"
    try:
        with disk_full_is_user_error(final):
            root.mkdir(parents=True, exist_ok=True)
            shutil.rmtree(tmp, ignore_errors=True)
            tmp.mkdir()
            for name, sd in tensors.items():
                save_file(sd, str(tmp / name))
            for name, obj in jsons.items():
                atomic_write_json(tmp / name, obj)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    if final.exists():  # re-saving the same step (e.g. stop right after a periodic save): swap safely
        old = root / f".old-step-{step}-{os.getpid()}"
        os.replace(final, old)
        os.replace(tmp, final)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.replace(tmp, final)
    return final


def prune(run_dir: str | Path, keep: int) -> None:
    """Keep the newest ``keep`` checkpoints."""
    for _, path in step_dirs(run_dir)[:-keep] if keep > 0 else []:
        shutil.rmtree(path, ignore_errors=True)


def set_aside(step_dir: Path) -> None:
    """Move a checkpoint that failed verification out of the way (the next start clears it)."""
    os.replace(step_dir, step_dir.parent / f".bad-{step_dir.name}")


# ---------------------------------------------------------------- weights for chat, evaluation, export
def usable_weights(run_id: str) -> Optional[UsableWeights]:
    """The final adapter of a completed run, else the newest verified checkpoint of a stopped or failed run."""
    from core.defaults import ACTIVE_STATES
    from core.runs import status
    from core.workspace import run_dir

    folder = run_dir(run_id)
    st = status(run_id) if (folder / "status.json").exists() else {}
    if (folder / ADAPTER / "adapter_config.json").exists():
        return UsableWeights(folder / ADAPTER, int(st.get("step") or 0), st.get("total_steps"), True)
    if st.get("state") in ACTIVE_STATES:
        return None  # its checkpoints are still being written and pruned
    path, _ = choose(folder)
    if path is None:
        return None
    state = read_json(path / TRAINER_STATE)
    if int(state["step"]) == 0:  # stopped before its first step: these are the base model's weights
        return None
    return UsableWeights(path, int(state["step"]), state.get("total_steps"), False)


def load_weights(model, weights: UsableWeights, run_config: dict):
    """Apply the run's method to ``model`` and load ``weights`` into it (a UserError when the files are damaged)."""
    from core.peft import load_adapter
    from core.peft.apply import apply_peft, set_peft_state_dict
    from core.training.config import TrainingConfig

    if weights.final:
        return load_adapter(model, weights.path)
    problem = verify(weights.path)
    if problem:
        raise UserError(f"The checkpoint {weights.path} cannot be used ({problem}); resume or retrain the run.")
    apply_peft(model, TrainingConfig.from_dict(run_config).peft_config())
    set_peft_state_dict(model, load_file(str(weights.path / WEIGHTS)))
    return model


# ---------------------------------------------------------------- the trainer's state
COUNTERS = ("step", "best_eval", "evals_without_improvement", "consecutive_nonfinite", "skipped_steps",
            "pending_eval", "early_stopped", "applied_steps")


def trainer_state(t) -> dict:
    """What an AdvancedTrainer ``t`` needs to continue exactly: counters, data position, schedule (JSON)."""
    epoch, pos = divmod(t.step, t.steps_per_epoch)
    opt = t.optimizer
    return {**{k: getattr(t, k) for k in COUNTERS}, "total_steps": t.total_steps,
            "steps_per_epoch": t.steps_per_epoch, "epoch_index": epoch, "batch_index": pos * t.per_step,
            "batches_per_epoch": t.batches_per_epoch, "world_size": t.ctx.world_size, "grad_accum": t.tc.grad_accum,
            "batch_size": t.tc.batch_size, "elapsed_s": t.metrics.elapsed, "saved_at": time.time(),
            "lr_schedule": {"base_lr": opt.base_lr, "scheduler": opt.scheduler, "warmup_steps": opt.warmup_steps,
                            "min_lr_ratio": opt.min_lr_ratio}}


def restore(t, step_dir: Path) -> None:
    """Load a verified checkpoint into an AdvancedTrainer ``t``: weights, optimizer, counters, RNG states."""
    from core.peft import set_peft_state_dict
    from core.training import distributed as D

    state = read_json(step_dir / TRAINER_STATE)
    if state["steps_per_epoch"] != t.steps_per_epoch or state["total_steps"] != t.total_steps:
        raise UserError(f"The checkpoint {step_dir.name} was made with {state['steps_per_epoch']} steps/epoch and "
                        f"{state['total_steps']} total steps, but the data/config now give {t.steps_per_epoch} "
                        f"and {t.total_steps}. Resume with the same data, batch size, grad_accum and number of "
                        "processes, or start a new run.")
    device = t.ctx.device
    set_peft_state_dict(D.unwrap(t.model), load_file(str(step_dir / WEIGHTS), device=str(device)))
    t.optimizer.load_state_tensors(load_file(str(step_dir / OPTIMIZER)), read_json(step_dir / OPTIMIZER_META))
    state.setdefault("early_stopped", False)
    state.setdefault("applied_steps", state["step"] - state["skipped_steps"])  # older checkpoints lack the count
    for key in COUNTERS:
        setattr(t, key, state[key])
    t.elapsed_before = state["elapsed_s"]
    restore_rng(step_dir, t.ctx.rank, device)


# ---------------------------------------------------------------- RNG states
def torch_rng_state(device: torch.device) -> dict:
    """This process's torch (and CUDA) RNG state as lists, to gather from every rank."""
    state = {"torch": torch.get_rng_state()}
    if device.type == "cuda":
        state["cuda"] = torch.cuda.get_rng_state(device)
    return {k: v.tolist() for k, v in state.items()}


def rng_tensors(per_rank: list[dict]) -> dict:
    """Every rank's RNG state as uint8 tensors keyed ``rank{r}.{torch|cuda}``."""
    return {f"rank{r}.{k}": torch.tensor(v, dtype=torch.uint8) for r, st in enumerate(per_rank) for k, v in st.items()}


def restore_rng(step_dir: Path, rank: int, device: torch.device) -> None:
    """Restore torch, CUDA, Python and NumPy RNG states from a checkpoint (rank 0's when this rank has none)."""
    rng = load_file(str(step_dir / RNG))
    r = rank if f"rank{rank}.torch" in rng else 0
    torch.set_rng_state(rng[f"rank{r}.torch"])
    if device.type == "cuda" and f"rank{r}.cuda" in rng:
        torch.cuda.set_rng_state(rng[f"rank{r}.cuda"], device)
    set_host_rng_state(read_json(step_dir / RNG_META) or {})


def host_rng_state() -> dict:
    """Python's and NumPy's RNG states as JSON."""
    import random

    import numpy as np

    version, internal, gauss = random.getstate()
    name, keys, pos, has_gauss, cached = np.random.get_state()
    return {"python": [version, list(internal), gauss],
            "numpy": [name, keys.tolist(), int(pos), int(has_gauss), float(cached)]}


def set_host_rng_state(state: dict) -> None:
    """Restore what :func:`host_rng_state` saved."""
    import random

    import numpy as np

    if "python" in state:
        version, internal, gauss = state["python"]
        random.setstate((version, tuple(internal), gauss))
    if "numpy" in state:
        name, keys, pos, has_gauss, cached = state["numpy"]
        np.random.set_state((name, np.array(keys, dtype=np.uint32), pos, has_gauss, cached))
