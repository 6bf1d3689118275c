"""Export files of a run for download: our adapter, the PEFT-format LoRA, the merged model (zipped), the report."""
from __future__ import annotations

import os
import zipfile
from pathlib import Path
from typing import Optional

from core.workspace import run_dir

FORMATS = ("adapter", "peft", "merged")


def export_folder(run_id: str, fmt: str) -> Path:
    """``runs/<id>/export/<fmt>``."""
    return run_dir(run_id) / "export" / fmt


def zip_path(run_id: str, fmt: str) -> Path:
    """``runs/<id>/export/<run_id>-<fmt>.zip``."""
    return run_dir(run_id) / "export" / f"{run_id}-{fmt}.zip"


def build_export(run_id: str, fmt: str) -> Path:
    """Run the engine's export (``python -m core export`` in-process) and zip the folder; returns the zip."""
    if fmt not in FORMATS:
        raise ValueError(f"unknown export format {fmt!r}")
    folder = export_folder(run_id, fmt)
    from core.peft.cli import export_run  # the same function the CLI verb runs

    export_run(run_id, fmt, folder)
    return zip_folder(folder, zip_path(run_id, fmt))


def available(method: str, fmt: str) -> bool:
    """Whether ``fmt`` exists for a run of ``method`` (the engine refuses the others with a message)."""
    try:
        from core.peft.cli import MERGEABLE
    except ImportError:
        MERGEABLE = ("lora", "full", "freeze")
    return fmt == "adapter" or (fmt == "peft" and method == "lora") or (fmt == "merged" and method in MERGEABLE)


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
