"""Exports of a run's usable weights (the final adapter or, for a stopped or failed run, its newest checkpoint):
our adapter folder, the PEFT-format LoRA, the merged model, each zipped for download; and the GGUF file (f16 or
q8_0) with its Ollama Modelfile, built by a background ``python -m core export`` job (core.jobs) because merging
and writing a few hundred MB takes a while on a CPU.

The names carry the step of a checkpoint export, so an export "as of step N" is never mistaken for the final one.
"""
from __future__ import annotations

import os
import sys
import time
import zipfile
from pathlib import Path
from typing import Optional

from core import jobs
from core.chat import run_weights
from core.checkpoints import UsableWeights
from core.errors import UserError
from core.peft.cli import EXPORTS, MERGEABLE, export_run
from core.peft.cli import export_command as peft_export_command
from core.workspace import run_dir

FORMATS = ("adapter", "peft", "merged")
GGUF_QUANTS = ("f16", "q8_0")


def available(method: str, fmt: str) -> bool:
    """Whether ``fmt`` (a format, or ``gguf``) exists for a run of ``method`` (others are refused with a message)."""
    if fmt in ("merged", "gguf"):
        return method in MERGEABLE
    return fmt == "adapter" or (fmt == "peft" and method == "lora")


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
# ---------------------------------------------------------------- GGUF, as a background job
def gguf_folder(run_id: str, quant: str, weights: UsableWeights) -> Path:
    """``runs/<id>/export/gguf-<quant>[-stepN]/``: the GGUF file and its Modelfile."""
    return run_dir(run_id) / EXPORTS / f"gguf-{quant}{_tag(weights)}"


def _job_file(quant: str) -> str:
    return f"gguf-{quant}.json"


def start_gguf(run_id: str, quant: str, accept_failing_gate: bool = False) -> dict:
    """Start ``python -m core export RUN_ID --format gguf --quant QUANT`` into ``gguf_folder`` in the background
    (``accept_failing_gate``: the user confirmed exporting a run that fails the release gate; the export records it)."""
    if quant not in GGUF_QUANTS:
        raise UserError(f"Unknown GGUF type {quant!r}; choose {', '.join(GGUF_QUANTS)}.")
    folder = run_dir(run_id) / EXPORTS
    if jobs.alive(jobs.read_job(folder, _job_file(quant))):
        raise UserError(f"A {quant} GGUF export of run '{run_id}' is already running.")
    out = gguf_folder(run_id, quant, run_weights(run_id))
    args = [run_id, "--format", "gguf", "--quant", quant, "--out", str(out), "--force"]
    args += ["--accept-failing-gate"] if accept_failing_gate else []
    return jobs.spawn(folder, "export", args,
                      log_name=f"gguf-{quant}.log", job_file=_job_file(quant), extra={"out": str(out)})


def gguf_files(folder: Path) -> list[Path]:
    """The ``.gguf`` file and the ``Modelfile`` of a finished GGUF export (empty when there is none)."""
    files = sorted(folder.glob("*.gguf")) + [folder / "Modelfile"]
    return files if len(files) == 2 and all(f.is_file() for f in files) else []


def gguf_state(run_id: str, quant: str, weights: UsableWeights) -> dict:
    """state (none, running, done, failed), elapsed_s while running, took_s of the build on disk, files, log_tail.

    ``took_s`` is measured from the job's start to the GGUF file's last write, so it is what the build really took.
    """
    folder, target = run_dir(run_id) / EXPORTS, gguf_folder(run_id, quant, weights)
    job = jobs.read_job(folder, _job_file(quant)) or {}
    if job.get("out") != str(target):
        job = {}  # a job for other weights of the run (before a resume): not about this folder
    files = gguf_files(target)
    started = float(job.get("started_at") or 0)
    fresh = bool(files and job) and files[0].stat().st_mtime >= started
    took = files[0].stat().st_mtime - started if fresh else None
    if jobs.alive(job):
        state = "running"
    elif not job:
        state = "done" if files else "none"
    else:
        state = "done" if fresh else "failed"
    return {"state": state, "elapsed_s": time.time() - started if state == "running" else None, "took_s": took,
            "files": files, "log_tail": jobs.log_tail(folder / f"gguf-{quant}.log", 8) if state == "failed" else ""}
