"""The two baselines every PEFT method is compared against, through the same ``apply_peft``.

``full``: every parameter trains. Trainable = all parameters (tied embeddings counted once).
``freeze``: only the last ``N`` blocks and the final norm train; embeddings and head stay frozen.
Trainable = ``N * params_per_block + params(final_norm)``. SmolLM2-135M (a block has 3,540,096 parameters,
the norm 576), N=2: ``7,080,768``.
"""
from __future__ import annotations

import torch.nn as nn

from core.peft.config import FreezeConfig
from core.peft.inject import find_blocks, final_norm


def full_parameter_names(model: nn.Module) -> list[str]:
    """Every parameter (shared tensors once)."""
    return [name for name, _ in model.named_parameters()]


def freeze_parameter_names(model: nn.Module, cfg: FreezeConfig) -> list[str]:
    """Parameters of the last ``trainable_layers`` blocks and of the final norm."""
    blocks_name, blocks = find_blocks(model)
    first = len(blocks) - min(cfg.trainable_layers, len(blocks))
    prefixes = [f"{blocks_name}.{i}." for i in range(first, len(blocks))]
    norm = final_norm(model)
    if norm is not None:
        prefixes.append(norm[0] + ".")
    return [name for name, _ in model.named_parameters() if name.startswith(tuple(prefixes))]
