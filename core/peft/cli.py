"""``python -m core export RUN_ID --format adapter|peft|merged|gguf [--quant f16|q8_0] --out DIR [--force]``.

- ``adapter``: the run's weights in our adapter format (any method).
- ``peft``: a LoRA folder that HF peft loads (``PeftModel.from_pretrained``); LoRA runs only.
- ``merged``: a standalone HF model folder (``save_pretrained``, safetensors, plus the tokenizer): LoRA is merged
  into the base weights; full and freeze runs are saved as they are. Adapter and prefix runs cannot be merged.
- ``gguf``: the same merged model as one GGUF file (Llama-architecture models) plus an Ollama ``Modelfile``
  (``core.gguf``); ``--quant`` picks f16 (default) or q8_0.

The weights are the final adapter of a completed run, else the newest verified checkpoint of a stopped or failed
run (``core.checkpoints.usable_weights``). The export is written into a temp folder beside ``--out`` and renamed
into place, so a failure never leaves half an export, and an existing folder is replaced only with ``--force``.
"""
from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path
from typing import Callable, Optional

from core.checkpoints import UsableWeights
from core.errors import UserError
from core.fileio import read_json
from core.workspace import run_dir

MERGEABLE = ("lora", "full", "freeze")
FORMATS = ("adapter", "peft", "merged", "gguf")
EXPORTS = "export"  # runs/<id>/export/<format>: where the app exports for download


def _run_config(run_id: str) -> tuple[Path, dict, UsableWeights]:
    """(run folder, run config, the weights to export)."""
    from core.chat import run_weights

    folder = run_dir(run_id)
    config = read_json(folder / "config.json")
    if config is None:
        raise UserError(f"Run '{run_id}' not found (no {folder / 'config.json'}); list runs in the app or check the id.")
    return folder, config, run_weights(run_id)


def check_out(run_id: str, out: str | Path, force: bool = False) -> Path:
    """Where an export may go: not inside the run's folder (except its export/ area), not a file, not a non-empty
    folder unless ``force``."""
    out = Path(out).expanduser().resolve()
    folder = run_dir(run_id).resolve()
    if (folder / EXPORTS) in out.parents:  # the app's own export area of the run: regenerated on every export
        return out
    if out == folder or folder in out.parents or out in folder.parents:
        raise UserError(f"--out {out} is inside (or holds) the run's own folder {folder}; exporting there would "
                        "overwrite the run. Choose a folder outside workspace/runs/, e.g. exports/<name>.")
    if out.exists() and not out.is_dir():
        raise UserError(f"--out {out} is an existing file; give a folder path (it is created).")
    if out.is_dir() and any(out.iterdir()) and not force:
        raise UserError(f"--out {out} already holds files; choose an empty or new folder, or pass --force to "
                        "replace its contents.")
    return out


def _write_into(out: Path, write: Callable[[Path], None]) -> None:
    """Run ``write(tmp)`` on a temp folder beside ``out``, then swap it into place."""
    tmp = out.parent / f".{out.name}.tmp-{os.getpid()}"
    shutil.rmtree(tmp, ignore_errors=True)
    out.parent.mkdir(parents=True, exist_ok=True)
    try:
        write(tmp)
    except BaseException:
        shutil.rmtree(tmp, ignore_errors=True)
        raise
    old: Optional[Path] = None
    if out.exists():
        old = out.parent / f".{out.name}.old-{os.getpid()}"
        os.replace(out, old)
    os.replace(tmp, out)
    if old is not None:
        shutil.rmtree(old, ignore_errors=True)


def _check_format(run_id: str, fmt: str, method: str, quant: str | None) -> None:
    """UserError when ``fmt`` (and ``quant``) cannot hold a run trained with ``method``."""
    if fmt not in FORMATS:
        raise UserError(f"Unknown export format {fmt!r}; choose {', '.join(FORMATS)}.")
    if quant is not None and fmt != "gguf":
        raise UserError("--quant applies to --format gguf only.")
    if fmt == "peft" and method != "lora":
        raise UserError(f"The peft format holds LoRA only; run '{run_id}' used '{method}'. Use --format adapter.")
    if fmt in ("merged", "gguf") and method not in MERGEABLE:
        raise UserError(f"A {fmt} model is only available for LoRA (and full/freeze) runs; run '{run_id}' used "
                        f"'{method}', whose layers cannot be folded into the base. Use --format adapter.")


def export_run(run_id: str, fmt: str, out: str | Path, force: bool = False, quant: str | None = None) -> Path:
    """Export one run in ``fmt`` (adapter, peft, merged, gguf) into ``out``; returns the folder."""
    from core.checkpoints import disk_full_is_user_error
    from core.peft.io import export_peft, merge_lora, save_adapter

    _, config, weights = _run_config(run_id)
    method = config.get("method", "lora")
    _check_format(run_id, fmt, method, quant)
    out = check_out(run_id, out, force)
    if fmt == "adapter" and weights.final:
        with disk_full_is_user_error(out):
            _write_into(out, lambda tmp: shutil.copytree(weights.path, tmp))
        return out
    from core.chat import load_run_model

    model, tok, _ = load_run_model(run_id)
    if fmt == "gguf":
        from core.gguf import check_llama
        check_llama(model)  # before any writing: a GPT-2 base is refused with nothing left behind

    def write(tmp: Path) -> None:
        if fmt == "adapter":
            save_adapter(model, tmp)
        elif fmt == "peft":
            export_peft(model, tmp)
        else:
            if method == "lora":
                merge_lora(model)
            if fmt == "gguf":
                _write_gguf(model, tok, config, run_id, tmp, quant or "f16")
            else:
                model.save_pretrained(tmp)
                tok.save_pretrained(tmp)

    with disk_full_is_user_error(out):
        _write_into(out, write)
    return out


def _write_gguf(model, tok, config: dict, run_id: str, folder: Path, quant: str) -> None:
    """The GGUF file and Modelfile of a merged model (``core.gguf``)."""
    from core.defaults import DEFAULT_MODEL
    from core.gguf import export_gguf

    run = {"run_id": run_id, "model": config.get("model") or DEFAULT_MODEL, "method": config.get("method", "lora"),
           "system_prompt": config.get("system_prompt")}
    export_gguf(model, tok, run, folder, quant)


def export_command(args) -> int:
    """CLI entry point: prints the output folder (and, on stderr, which weights when the run did not finish)."""
    _, _, weights = _run_config(args.run_id)
    if not weights.final:
        print(f"note: run {args.run_id} did not finish; exporting its weights {weights.describe()}.", file=sys.stderr)
    out = export_run(args.run_id, args.format, args.out, force=getattr(args, "force", False),
                     quant=getattr(args, "quant", None))
    print(out)
    return 0
