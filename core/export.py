"""Exports of a run's usable weights (the final adapter or, for a stopped or failed run, its newest checkpoint):
our adapter folder, the PEFT-format LoRA, the merged model; each zipped for download.

The zip's name carries the step of a checkpoint export, so an export "as of step N" is never mistaken for the
final one.
"""
from __future__ import annotations

import os
import sys
import zipfile
from pathlib import Path
from typing import Optional

from core.chat import run_weights
from core.checkpoints import UsableWeights
from core.errors import UserError
from core.peft.cli import EXPORTS, MERGEABLE, export_run
from core.peft.cli import export_command as peft_export_command
from core.workspace import run_dir

FORMATS = ("adapter", "peft", "merged")


def available(method: str, fmt: str) -> bool:
    """Whether ``fmt`` exists for a run of ``method`` (the others are refused with a message)."""
    return fmt == "adapter" or (fmt == "peft" and method == "lora") or (fmt == "merged" and method in MERGEABLE)


def _tag(weights: UsableWeights) -> str:
    return "" if weights.final else f"-step{weights.step}"


def zip_path(run_id: str, fmt: str, weights: UsableWeights) -> Path:
    """``runs/<id>/export/<run_id>[-stepN]-<fmt>.zip``."""
    return run_dir(run_id) / EXPORTS / f"{run_id}{_tag(weights)}-{fmt}.zip"


def build_export(run_id: str, fmt: str) -> Path:
    """Export the run's usable weights in ``fmt`` (``core.peft.cli.export_run``) and zip the folder; returns the zip."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose {', '.join(FORMATS)}.")
    weights = run_weights(run_id)
    folder = run_dir(run_id) / EXPORTS / f"{fmt}{_tag(weights)}"
    export_run(run_id, fmt, folder, force=True)
    return zip_folder(folder, zip_path(run_id, fmt, weights))


def zip_folder(folder: Path, target: Path) -> Path:
    """Zip ``folder`` into ``target`` atomically (temp file then rename)."""
    tmp = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    target.parent.mkdir(parents=True, exist_ok=True)
    with zipfile.ZipFile(tmp, "w", compression=zipfile.ZIP_DEFLATED, compresslevel=1) as zf:
        for path in sorted(folder.rglob("*")):
            if path.is_file():
                zf.write(path, arcname=str(Path(folder.name) / path.relative_to(folder)))
    os.replace(tmp, target)
    return target


def report_html(run_id: str) -> Optional[Path]:
    """``runs/<id>/eval/report.html`` when the evaluation wrote one."""
    path = run_dir(run_id) / "eval" / "report.html"
    return path if path.exists() else None


def export_command(args) -> int:
    """``python -m core export``: refuses a run that does not pass the release gate unless
    ``--accept-failing-gate`` (then recorded in its report), then exports (``core.peft.cli.export_command``)."""
    from core.evaluation.gate import blocks_export, check_export_allowed

    gate = check_export_allowed(args.run_id, getattr(args, "accept_failing_gate", False))
    if blocks_export(gate):
        print(f"note: run {args.run_id} does not pass the release gate ({gate['status']}); exporting as confirmed "
              "(recorded in its report).", file=sys.stderr)
    return peft_export_command(args)
