"""Saving, loading, merging and exporting PEFT weights.

Our adapter folder (``save_adapter``)::

    adapter_config.json     {"format", "version", "method", "config", "base_model": fingerprint, "folded", ...}
    adapter.safetensors     only the method's tensors, keyed by parameter name in the model

``load_adapter`` refuses a folder made for another base model (the fingerprint: model type, hidden size, layers,
vocabulary, name) or, when the model already carries a method, for another method — saying which.

``export_peft`` writes a LoRA in HF peft's layout (``adapter_config.json`` with ``peft_type: LORA`` and
``adapter_model.safetensors`` keyed ``base_model.model.<module>.lora_A.weight`` ...), which
``peft.PeftModel.from_pretrained(base, folder)`` loads.
"""
from __future__ import annotations

import re
from pathlib import Path

import torch
import torch.nn as nn
from safetensors import SafetensorError
from safetensors.torch import load_file, save

from core.errors import UserError
from core.peft.apply import (CONFIG_ATTR, apply_peft, get_peft_config, hidden_size, peft_state_dict,
                             set_peft_state_dict)
from core.peft.config import config_from_dict
from core.peft.inject import linear_modules, num_layers, replace_module
from core.peft.lora import LoRALinear
from core.fileio import atomic_write_bytes, atomic_write_json, read_json

ADAPTER_CONFIG = "adapter_config.json"
ADAPTER_WEIGHTS = "adapter.safetensors"
PEFT_WEIGHTS = "adapter_model.safetensors"
FORMAT = "assistant-factory-adapter"
MERGED_ATTR = "_assistant_factory_merged"


def base_fingerprint(model: nn.Module) -> dict:
    """What identifies a base model: type, sizes and name."""
    return {"model_type": getattr(model.config, "model_type", None), "hidden_size": hidden_size(model),
            "num_layers": num_layers(model), "vocab_size": model.get_input_embeddings().num_embeddings,
            "name_or_path": str(getattr(model, "name_or_path", "") or "")}


def _describe(fp: dict) -> str:
    return (f"{fp.get('name_or_path') or '?'} ({fp.get('model_type')}, hidden {fp.get('hidden_size')}, "
            f"{fp.get('num_layers')} layers, vocab {fp.get('vocab_size')})")


# ---------------------------------------------------------------- our format
def save_adapter(model: nn.Module, directory: str | Path) -> Path:
    """Write ``adapter_config.json`` + ``adapter.safetensors`` (only the method's tensors) atomically."""
    cfg = _require_config(model)
    directory = Path(directory)
    state = {name: t.contiguous().cpu() for name, t in peft_state_dict(model).items()}
    prefix = getattr(model, "prefix_tuning", None)
    meta = {"format": FORMAT, "version": 1, "method": cfg.method, "config": cfg.to_dict(),
            "base_model": base_fingerprint(model), "folded": bool(prefix is not None and prefix.folded),
            "trainable_parameters": sum(t.numel() for t in state.values()), "num_tensors": len(state)}
    atomic_write_bytes(directory / ADAPTER_WEIGHTS, save(state, metadata={"format": "pt"}))
    atomic_write_json(directory / ADAPTER_CONFIG, meta)
    return directory


def read_adapter_config(directory: str | Path) -> dict:
    """The ``adapter_config.json`` of one of our adapter folders (a UserError if it is not one)."""
    directory = Path(directory)
    try:
        meta = read_json(directory / ADAPTER_CONFIG)
    except ValueError as exc:  # unparsable JSON (a truncated write): say which file
        raise UserError(f"{directory / ADAPTER_CONFIG} is damaged ({exc}); export or train the run again.") from exc
    if not isinstance(meta, dict) or meta.get("format") != FORMAT or not (directory / ADAPTER_WEIGHTS).exists():
        hint = " (it looks like an HF peft folder; load it with peft instead)" if meta and "peft_type" in meta else ""
        raise UserError(f"{directory} is not an adapter folder written by save_adapter{hint}: it needs "
                        f"{ADAPTER_CONFIG} and {ADAPTER_WEIGHTS}. Point at runs/<id>/adapter.")
    return meta


def load_adapter(base_model: nn.Module, directory: str | Path, method: str | None = None,
                 strict: bool = True) -> nn.Module:
    """Apply the saved method to ``base_model`` (or reuse the one applied) and load its tensors."""
    meta = read_adapter_config(directory)
    _check_base(meta["base_model"], base_fingerprint(base_model), strict)
    existing = get_peft_config(base_model)
    wanted = method or (existing.method if existing is not None else None)
    if wanted is not None and wanted != meta["method"]:
        raise UserError(f"The adapter in {directory} was trained with method '{meta['method']}' but the model "
                        f"uses '{wanted}'. Load it onto a fresh base model, or pick an adapter trained with '{wanted}'.")
    cfg = config_from_dict(meta["method"], meta["config"])
    if existing is None:
        apply_peft(base_model, cfg)
    elif existing != cfg:
        raise UserError(f"The model's {existing.method} configuration {existing.to_dict()} differs from the saved "
                        f"one {cfg.to_dict()}; load the adapter onto a fresh base model.")
    if meta.get("folded"):
        base_model.prefix_tuning.fold()
    set_peft_state_dict(base_model, read_adapter_weights(directory))
    return base_model


def read_adapter_weights(directory: str | Path) -> dict[str, torch.Tensor]:
    """Every tensor of ``adapter.safetensors``; a UserError when the file is truncated or damaged."""
    path = Path(directory) / ADAPTER_WEIGHTS
    try:
        return load_file(str(path))
    except (OSError, ValueError, SafetensorError) as exc:
        raise UserError(f"{path} is damaged or incomplete ({type(exc).__name__}: {exc}); it cannot be loaded. "
                        "Export or train the run again (a stopped run can be resumed).") from exc


def _check_base(saved: dict, given: dict, strict: bool) -> None:
    keys = ["model_type", "hidden_size", "num_layers", "vocab_size"] + (["name_or_path"] if strict else [])
    differ = [k for k in keys if saved.get(k) != given.get(k)]
    if differ:
        raise UserError(f"This adapter was trained on {_describe(saved)} but the model given is {_describe(given)} "
                        f"(different {', '.join(differ)}). Load the base model '{saved.get('name_or_path')}' "
                        "first" + ("" if "name_or_path" not in differ or len(differ) > 1 else
                                   ", or pass strict=False if it is the same model under another name") + ".")


def _require_config(model: nn.Module):
    cfg = get_peft_config(model)
    if cfg is None:
        raise UserError("This model has no PEFT method applied; call apply_peft(model, config) first.")
    return cfg


# ---------------------------------------------------------------- LoRA merge and peft export
def lora_layers(model: nn.Module) -> dict[str, LoRALinear]:
    """Every ``LoRALinear`` by module name."""
    return {name: m for name, m in model.named_modules() if isinstance(m, LoRALinear)}


def merge_lora(model: nn.Module) -> nn.Module:
    """Fold every LoRA update into its base weight and unwrap the layers; a second call is refused."""
    if getattr(model, MERGED_ATTR, False):
        raise UserError("This model's LoRA is already merged; merging again would add the update twice.")
    cfg = _require_config(model)
    if cfg.method != "lora":
        raise UserError(f"merge_lora only applies to LoRA; this model uses '{cfg.method}'.")
    layers = lora_layers(model)
    with torch.no_grad():  # check everything before touching any weight
        broken = [name for name, layer in layers.items() if not torch.isfinite(layer.merged_weight()).all()]
    if broken:
        raise UserError(f"The LoRA weights of {broken[:3]} contain NaN or Inf; merging would break the model. "
                        "Retrain with a lower learning rate or use an earlier checkpoint.")
    for name, layer in layers.items():
        layer.merge()
        replace_module(model, name, layer.base_layer)
    setattr(model, CONFIG_ATTR, None)
    setattr(model, MERGED_ATTR, True)
    return model


def _peft_target_modules(model: nn.Module, names: list[str]) -> list[str] | str:
    """Short names when they select exactly our layers in peft's suffix matching, else an exact regex."""
    short = sorted({n.rsplit(".", 1)[-1] for n in names})
    candidates = {n.removesuffix(".base_layer") for n, _ in linear_modules(model)}
    if {n for n in candidates if n.rsplit(".", 1)[-1] in short} == set(names):
        return short
    return "^(" + "|".join(re.escape(n) for n in sorted(names)) + ")$"


def export_peft(model: nn.Module, directory: str | Path) -> Path:
    """Write the LoRA in HF peft's layout (``adapter_config.json`` + ``adapter_model.safetensors``)."""
    cfg = _require_config(model)
    if cfg.method != "lora":
        raise UserError(f"The peft export is for LoRA only; this model uses '{cfg.method}'. "
                        "Export it with --format adapter instead.")
    layers = lora_layers(model)
    state = {}
    for name, layer in layers.items():
        key = f"base_model.model.{name}"
        state[f"{key}.lora_A.weight"] = layer.lora_A.weight.detach().contiguous().cpu()
        state[f"{key}.lora_B.weight"] = layer.lora_B.weight.detach().contiguous().cpu()
        if layer.use_dora:
            state[f"{key}.lora_magnitude_vector"] = layer.lora_magnitude_vector.detach().contiguous().cpu()
    config = {
        "peft_type": "LORA", "task_type": "CAUSAL_LM", "base_model_name_or_path": str(model.name_or_path or ""),
        "r": cfg.r, "lora_alpha": cfg.alpha, "lora_dropout": cfg.dropout,
        "target_modules": _peft_target_modules(model, sorted(layers)), "use_rslora": cfg.use_rslora,
        "use_dora": cfg.use_dora, "fan_in_fan_out": any(layer.fan_in_fan_out for layer in layers.values()),
        "bias": "none", "inference_mode": True, "init_lora_weights": True, "modules_to_save": None,
        "layers_to_transform": None, "layers_pattern": None, "rank_pattern": {}, "alpha_pattern": {},
        "revision": None,
    }
    directory = Path(directory)
    atomic_write_bytes(directory / PEFT_WEIGHTS, save(state, metadata={"format": "pt"}))
    atomic_write_json(directory / ADAPTER_CONFIG, config)
    return directory
