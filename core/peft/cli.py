"""``python -m core export RUN_ID --format adapter|peft|merged --out DIR`` (DESIGN §3, §6).

- ``adapter``: a copy of the run's ``adapter/`` folder (our format, any method).
- ``peft``: a LoRA folder that HF peft loads (``PeftModel.from_pretrained``); LoRA runs only.
- ``merged``: a standalone HF model folder (``save_pretrained``, safetensors, plus the tokenizer): LoRA is merged
  into the base weights; full and freeze runs are saved as they are. Adapter and prefix runs cannot be merged.
"""
from __future__ import annotations

import shutil
from pathlib import Path

from core.errors import UserError
from core.fileio import read_json
from core.workspace import run_dir

MERGEABLE = ("lora", "full", "freeze")


def _run_config(run_id: str) -> tuple[Path, dict]:
    folder = run_dir(run_id)
    config = read_json(folder / "config.json")
    if config is None:
        raise UserError(f"Run '{run_id}' not found (no {folder / 'config.json'}); list runs in the app or check the id.")
    if not (folder / "adapter" / "adapter_config.json").exists():
        raise UserError(f"Run '{run_id}' has no trained adapter yet ({folder / 'adapter'} is missing); "
                        "wait for training to finish or resume it.")
    return folder, config


def load_run(run_id: str):
    """``(model with the run's method loaded, tokenizer, run config)``."""
    from core.defaults import DEFAULT_MODEL
    from core.models import load_model
    from core.peft.io import load_adapter

    folder, config = _run_config(run_id)
    model, tok = load_model(config.get("model") or DEFAULT_MODEL)
    load_adapter(model, folder / "adapter", method=config.get("method"))
    return model, tok, config


def export_run(run_id: str, fmt: str, out: str | Path) -> Path:
    """Export one run in ``fmt`` (adapter, peft, merged) into ``out``; returns the folder."""
    from core.peft.io import export_peft, merge_lora

    out = Path(out)
    if fmt == "adapter":
        folder, _ = _run_config(run_id)
        shutil.copytree(folder / "adapter", out, dirs_exist_ok=True)
        return out
    if fmt not in ("peft", "merged"):
        raise UserError(f"Unknown export format {fmt!r}; choose adapter, peft or merged.")
    _, config = _run_config(run_id)
    method = config.get("method", "lora")
    if fmt == "peft" and method != "lora":
        raise UserError(f"The peft format holds LoRA only; run '{run_id}' used '{method}'. Use --format adapter.")
    if fmt == "merged" and method not in MERGEABLE:
        raise UserError(f"A merged model is only available for LoRA (and full/freeze) runs; run '{run_id}' used "
                        f"'{method}', whose layers cannot be folded into the base. Use --format adapter.")
    model, tok, _ = load_run(run_id)
    if fmt == "peft":
        return export_peft(model, out)
    if method == "lora":
        merge_lora(model)
    model.save_pretrained(out)
    tok.save_pretrained(out)
    return out


def export_command(args) -> int:
    """CLI entry point: prints the output folder."""
    out = export_run(args.run_id, args.format, args.out)
    print(out)
    return 0
