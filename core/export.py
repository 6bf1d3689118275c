"""Exports of a run's usable weights (the final adapter or, for a stopped or failed run, its newest checkpoint):
our adapter folder, the PEFT-format LoRA, the merged model; each zipped for download.

The zip's name carries the step of a checkpoint export, so an export "as of step N" is never mistaken for the
final one.
"""
from __future__ import annotations

import os
import shutil
import zipfile
from pathlib import Path
from typing import Optional

from core.checkpoints import UsableWeights, load_weights, usable_weights
from core.errors import UserError
from core.peft.cli import MERGEABLE
from core.workspace import run_dir

FORMATS = ("adapter", "peft", "merged")


def available(method: str, fmt: str) -> bool:
    """Whether ``fmt`` exists for a run of ``method`` (the others are refused with a message)."""
    return fmt == "adapter" or (fmt == "peft" and method == "lora") or (fmt == "merged" and method in MERGEABLE)


def require_weights(run_id: str) -> UsableWeights:
    """The run's usable weights, or a UserError saying there are none yet."""
    weights = usable_weights(run_id)
    if weights is None:
        raise UserError(f"Run '{run_id}' has no trained adapter and no checkpoint yet; resume it or train a new "
                        "run.")
    return weights


def load_usable(run_id: str):
    """``(model, tokenizer, run config, weights)``: the run's base model with its usable weights loaded."""
    from core.chat import load_base_model

    weights = require_weights(run_id)
    model, tok, cfg = load_base_model(run_id)
    model = load_weights(model, weights, cfg)
    model.eval()
    return model, tok, cfg, weights


def _tag(weights: UsableWeights) -> str:
    return "" if weights.final else f"-step{weights.step}"


def zip_path(run_id: str, fmt: str, weights: UsableWeights) -> Path:
    """``runs/<id>/export/<run_id>[-stepN]-<fmt>.zip``."""
    return run_dir(run_id) / "export" / f"{run_id}{_tag(weights)}-{fmt}.zip"


def export_weights(run_id: str, fmt: str, out: Path) -> tuple[Path, UsableWeights]:
    """Write the run's usable weights in ``fmt`` into ``out``; returns the folder and the weights used."""
    from core.peft import export_peft, merge_lora, save_adapter

    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose {', '.join(FORMATS)}.")
    model, tok, cfg, weights = load_usable(run_id)
    method = cfg.get("method") or "lora"
    if not available(method, fmt):
        raise UserError(f"The {fmt} export is not available for a {method} run; use the adapter export.")
    shutil.rmtree(out, ignore_errors=True)
    if fmt == "adapter":
        save_adapter(model, out)
    elif fmt == "peft":
        export_peft(model, out)
    else:
        if method == "lora":
            model = merge_lora(model)
        model.save_pretrained(out)
        tok.save_pretrained(out)
    return out, weights


def build_export(run_id: str, fmt: str) -> Path:
    """Export the run's usable weights in ``fmt`` and zip the folder; returns the zip."""
    weights = require_weights(run_id)
    folder = run_dir(run_id) / "export" / f"{fmt}{_tag(weights)}"
    folder, weights = export_weights(run_id, fmt, folder)
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
