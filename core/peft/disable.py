"""``adapters_disabled(model)``: the base model's outputs from a PEFT model, without a second copy in memory.

DPO needs the frozen reference model's log-probabilities. For LoRA, adapters and prefix tuning the reference is the
base model, which is already inside the PEFT model: switching the method off for one forward gives its numbers
exactly (the wrapped base layers compute alone), at no memory cost. ``full`` and ``freeze`` change the base weights
themselves, so they have no "off" switch (``supports_disabling`` is False; the trainer precomputes instead).
"""
from __future__ import annotations

import contextlib
from typing import Iterator

import torch.nn as nn

from core.peft.adapter import AdapterLayer
from core.peft.apply import get_peft_config
from core.peft.lora import LoRALinear
from core.peft.inject import find_backbone
from core.peft.prefix import PrefixTuning

DISABLEABLE = ("lora", "adapter", "prefix")


def supports_disabling(model: nn.Module) -> bool:
    """Whether the applied method can be switched off (it adds modules rather than changing base weights)."""
    cfg = get_peft_config(model)
    return cfg is not None and cfg.method in DISABLEABLE


def _identity(hidden):
    return hidden


@contextlib.contextmanager
def adapters_disabled(model: nn.Module) -> Iterator[nn.Module]:
    """Inside the block the model computes as its base: LoRA updates, adapters and prefixes are skipped."""
    if not supports_disabling(model):
        raise ValueError("adapters_disabled needs a model with LoRA, adapters or prefix tuning applied.")
    if any(isinstance(m, LoRALinear) and m.merged for m in model.modules()):
        raise ValueError("A merged LoRA cannot be switched off; unmerge it first.")
    patched: list[nn.Module] = []
    prefixes: list[PrefixTuning] = []
    try:
        for module in model.modules():
            if isinstance(module, LoRALinear):
                # An instance attribute shadows the class's forward: the wrapped layer runs alone.
                module.forward = module.base_layer.forward
                patched.append(module)
            elif isinstance(module, AdapterLayer):
                module.forward = _identity
                patched.append(module)
            elif isinstance(module, PrefixTuning):
                module._handle.remove()  # its pre-hook is what feeds the prefixes to the backbone
                prefixes.append(module)
        yield model
    finally:
        for module in patched:
            del module.forward
        for prefix in prefixes:
            prefix.attach(find_backbone(model))
