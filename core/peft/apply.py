"""``apply_peft`` and the functions that read and write a PEFT model's method tensors.

``apply_peft(model, cfg)`` freezes every base parameter, injects the method and marks exactly the method's tensors
trainable. It returns the same ``PreTrainedModel`` object, so ``model(...)``, ``generate()`` and ``save_pretrained``
keep working. The config is remembered on the model (``get_peft_config``).
"""
from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from core.errors import UserError
from core.peft.adapter import inject_adapters, missing_sublayers
from core.peft.baselines import freeze_parameter_names, full_parameter_names
from core.peft.config import AdapterConfig, FreezeConfig, LoRAConfig, PeftConfig, PrefixConfig
from core.peft.inject import find_backbone, find_blocks, find_targets, replace_module
from core.peft.lora import LoRALinear
from core.peft.prefix import PrefixTuning, kv_shape

CONFIG_ATTR = "_assistant_factory_peft"  # not `peft_config`: transformers treats that name as an HF-peft model


def get_peft_config(model: nn.Module) -> PeftConfig | None:
    """The config ``apply_peft`` used on this model, or None."""
    return getattr(model, CONFIG_ATTR, None)


def hidden_size(model: nn.Module) -> int:
    """The model's hidden size (``hidden_size`` or GPT-2's ``n_embd``)."""
    config = model.config
    return getattr(config, "hidden_size", None) or config.n_embd


def apply_peft(model: nn.Module, cfg: PeftConfig) -> nn.Module:
    """Freeze the base, inject the method of ``cfg``, make only its tensors trainable; returns ``model``."""
    existing = get_peft_config(model)
    if existing is not None:
        raise UserError(f"This model already has {existing.method} applied; load a fresh base model "
                        f"before applying {cfg.method}.")
    _, blocks = find_blocks(model)  # raises a UserError for unsupported families
    problems = _structure_problems(model, blocks, cfg)
    if problems:
        raise UserError(f"{cfg.method} cannot be applied to {type(model).__name__}: " + "; ".join(problems) + ".")
    _inject(model, blocks, cfg)
    setattr(model, CONFIG_ATTR, cfg)
    model.requires_grad_(False)  # the base and anything not the method's
    for name in method_parameter_names(model):
        model.get_parameter(name).requires_grad_(True)
    return model


def _structure_problems(model: nn.Module, blocks: nn.ModuleList, cfg: PeftConfig) -> list[str]:
    if isinstance(cfg, LoRAConfig):
        find_targets(model, cfg.target_modules)  # raises with the list of existing names
    if isinstance(cfg, AdapterConfig):
        return missing_sublayers(blocks, cfg.placement)
    if isinstance(cfg, PrefixConfig):
        params = inspect.signature(find_backbone(model).forward).parameters
        if "cache" not in params and "past_key_values" not in params:
            return [f"its backbone {type(find_backbone(model)).__name__} takes no key/value cache, which prefix "
                    "tuning needs; use LoRA or Adapter for this model"]
    if isinstance(cfg, FreezeConfig) and cfg.trainable_layers > len(blocks):
        return [f"trainable_layers={cfg.trainable_layers} but the model has only {len(blocks)} blocks; "
                f"use at most {len(blocks)} (or method 'full')"]
    return []


def _inject(model: nn.Module, blocks: nn.ModuleList, cfg: PeftConfig) -> None:
    if isinstance(cfg, LoRAConfig):
        for name in find_targets(model, cfg.target_modules):
            base = model.get_submodule(name)
            layer = LoRALinear(base, cfg.r, cfg.alpha, cfg.dropout, cfg.use_rslora, cfg.use_dora)
            replace_module(model, name, layer.train(base.training))  # new modules follow the model's mode
    elif isinstance(cfg, AdapterConfig):
        inject_adapters(blocks, hidden_size(model), cfg)
    elif isinstance(cfg, PrefixConfig):
        ref = next(model.parameters())
        prefix = PrefixTuning(cfg, len(blocks), *kv_shape(model.config)).to(device=ref.device, dtype=ref.dtype)
        model.prefix_tuning = prefix.train(model.training)
        prefix.attach(find_backbone(model))


def method_parameter_names(model: nn.Module) -> list[str]:
    """Names of the parameters that belong to the applied method (exactly the trainable ones)."""
    cfg = get_peft_config(model)
    if cfg is None:
        raise UserError("This model has no PEFT method applied; call apply_peft(model, config) first.")
    names = [name for name, _ in model.named_parameters()]
    if cfg.method == "lora":
        return [n for n in names if any(part.startswith("lora_") for part in n.split("."))]
    if cfg.method == "adapter":
        return [n for n in names if ".adapters." in n]
    if cfg.method == "prefix":
        return [n for n in names if n.startswith("prefix_tuning.")]
    if cfg.method == "full":
        return full_parameter_names(model)
    return freeze_parameter_names(model, cfg)


def trainable_parameters(model: nn.Module) -> tuple[int, int]:
    """``(trainable, total)`` parameter counts (shared tensors counted once)."""
    params = list(model.parameters())
    return sum(p.numel() for p in params if p.requires_grad), sum(p.numel() for p in params)


def peft_state_dict(model: nn.Module) -> dict[str, torch.Tensor]:
    """Only the method's tensors, by parameter name (detached, not copied)."""
    return {name: model.get_parameter(name).detach() for name in method_parameter_names(model)}


def set_peft_state_dict(model: nn.Module, state: dict[str, torch.Tensor]) -> None:
    """Copy ``state`` into the method's tensors; refuses missing, unexpected or mis-shaped entries."""
    expected = {name: model.get_parameter(name) for name in method_parameter_names(model)}
    problems = []
    missing, unexpected = sorted(set(expected) - set(state)), sorted(set(state) - set(expected))
    if missing:
        problems.append(f"missing {len(missing)} tensor(s), e.g. {missing[:3]}")
    if unexpected:
        problems.append(f"{len(unexpected)} unexpected tensor(s), e.g. {unexpected[:3]}")
    for name in sorted(set(expected) & set(state)):
        if tuple(expected[name].shape) != tuple(state[name].shape):
            problems.append(f"{name} has shape {tuple(state[name].shape)}, the model expects "
                            f"{tuple(expected[name].shape)}")
    if problems:
        raise UserError("These weights do not fit the model: " + "; ".join(problems) +
                        ". Use weights saved from the same base model and method configuration.")
    with torch.no_grad():
        for name, param in expected.items():
            param.copy_(state[name].to(device=param.device, dtype=param.dtype))
