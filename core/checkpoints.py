"""Which weights of a run can be used now (the final adapter, else the newest checkpoint) and how to load them.

Placeholder of the trainer's module, with the same names and signatures, so the app can offer stopped and
failed runs; it does not verify checkpoints.
"""
from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from core.defaults import ACTIVE_STATES
from core.fileio import read_json
from core.workspace import run_dir


@dataclass
class UsableWeights:
    """Weights of a run that chat, evaluation and export may load: the final adapter or a checkpoint."""

    path: Path
    step: int
    total_steps: Optional[int]
    final: bool


def _status(run_id: str) -> dict:
    try:
        return read_json(run_dir(run_id) / "status.json", {}) or {}
    except ValueError:  # a damaged status file: judge from the folders alone
        return {}


def usable_weights(run_id: str) -> Optional[UsableWeights]:
    """The final adapter of a completed run, else the newest ``checkpoints/step-N/`` of a run that is not active."""
    folder = run_dir(run_id)
    status = _status(run_id)
    if (folder / "adapter" / "adapter_config.json").exists():
        return UsableWeights(folder / "adapter", int(status.get("step") or 0), status.get("total_steps"), True)
    if status.get("state") in ACTIVE_STATES:
        return None  # its checkpoints are still being written and pruned
    steps = [(int(p.name[5:]), p) for p in (folder / "checkpoints").glob("step-*") if p.name[5:].isdigit()
             and (p / "peft.safetensors").exists()]
    if not steps:
        return None
    step, path = max(steps)
    return UsableWeights(path, step, status.get("total_steps"), False)


def load_weights(model, weights: UsableWeights, run_config: dict):
    """Apply the run's method to ``model`` and load ``weights`` into it."""
    from safetensors.torch import load_file

    from core.peft import load_adapter
    from core.peft.apply import apply_peft, set_peft_state_dict
    from core.training.config import TrainingConfig

    if weights.final:
        return load_adapter(model, weights.path)
    apply_peft(model, TrainingConfig.from_dict(run_config).peft_config())
    set_peft_state_dict(model, load_file(str(weights.path / "peft.safetensors")))
    return model
