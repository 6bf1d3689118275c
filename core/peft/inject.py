"""Find the parts of a causal LM by structure, not by hard-coded names.

A decoder-only transformer (Llama, SmolLM, Qwen2, Mistral, GPT-2, ...) is: a *backbone* module holding a
``ModuleList`` of ``num_hidden_layers`` *blocks* and a final norm, plus an output head. Each block has an
attention sub-layer and an MLP sub-layer. Linear-like layers are ``nn.Linear`` and GPT-2's ``Conv1D``
(which stores its weight transposed, ``(in, out)``).

Target selection for LoRA follows HF peft: a tuple of names matches a module whose full name equals a name or
ends with ``"." + name``; a string is a regex that must match the full module name (``re.fullmatch``);
``"all-linear"`` selects every linear-like layer except the output head; ``"attention"`` every linear-like layer
inside the blocks' attention sub-layers (``q_proj, k_proj, v_proj, o_proj`` for Llama-style families, Phi-3's fused
``qkv_proj, o_proj``, GPT-2's ``c_attn`` and its attention ``c_proj``, GPT-NeoX's ``query_key_value, dense``).
A fused projection is adapted as one layer (one LoRA pair over its whole output), as HF peft adapts it.

Llama-style names given to a family that fuses those projections (``FUSED_ALIASES``: ``q_proj`` on Phi-3, GPT-2 or
GPT-NeoX) select the fused layer that computes them, so the default ``[q_proj, v_proj]`` and the recommendations
work on every family; a name the model has is always taken as it is.
"""
from __future__ import annotations

import re
from typing import Iterator, Union

import torch.nn as nn

from core.errors import UserError
from core.peft.config import TARGET_PRESETS

ATTENTION_NAMES = ("self_attn", "attn", "attention", "self_attention")
FUSED_QKV = ("qkv_proj", "c_attn", "query_key_value", "Wqkv")
FUSED_ALIASES = {"q_proj": FUSED_QKV, "k_proj": FUSED_QKV, "v_proj": FUSED_QKV,
                 "gate_proj": ("gate_up_proj",), "up_proj": ("gate_up_proj",)}
MLP_NAMES = ("mlp", "feed_forward", "ffn")


def conv1d_class():
    """transformers' GPT-2 ``Conv1D`` class (None if transformers lacks it)."""
    try:
        from transformers.pytorch_utils import Conv1D
    except ImportError:  # pragma: no cover - every supported transformers has it
        return None
    return Conv1D


def is_conv1d(module: nn.Module) -> bool:
    """True for GPT-2's transposed linear layer."""
    cls = conv1d_class()
    return cls is not None and isinstance(module, cls)


def is_linear_like(module: nn.Module) -> bool:
    """``nn.Linear`` or GPT-2 ``Conv1D``."""
    return isinstance(module, nn.Linear) or is_conv1d(module)


def linear_features(module: nn.Module) -> tuple[int, int]:
    """``(in_features, out_features)`` of a linear-like layer."""
    if is_conv1d(module):
        return module.weight.shape[0], module.weight.shape[1]
    return module.in_features, module.out_features


def num_layers(model: nn.Module) -> int:
    """Number of decoder blocks according to the config."""
    config = model.config
    for key in ("num_hidden_layers", "n_layer", "num_layers"):
        if isinstance(getattr(config, key, None), int):
            return getattr(config, key)
    raise UserError(f"Cannot tell how many layers a {type(model).__name__} has (no num_hidden_layers in its config); "
                    "use a Llama-style or GPT-2 model.")


def find_blocks(model: nn.Module) -> tuple[str, nn.ModuleList]:
    """``(name, ModuleList)`` of the decoder blocks: the first ModuleList with one entry per layer."""
    n = num_layers(model)
    for name, module in model.named_modules():
        if isinstance(module, nn.ModuleList) and len(module) == n and len({type(b) for b in module}) == 1:
            return name, module
    raise UserError(f"Could not find the decoder blocks of {type(model).__name__} (a list of {n} identical layers). "
                    "Supported families: Llama-style (Llama, SmolLM, Qwen2, Mistral) and GPT-2.")


def find_backbone(model: nn.Module) -> nn.Module:
    """The module that owns the blocks list (``model.model`` for Llama, ``model.transformer`` for GPT-2)."""
    name, _ = find_blocks(model)
    parent = name.rsplit(".", 1)[0] if "." in name else ""
    return model.get_submodule(parent)


def _child(block: nn.Module, names: tuple[str, ...], class_word: str) -> tuple[str, nn.Module] | None:
    for name in names:
        if isinstance(getattr(block, name, None), nn.Module):
            return name, getattr(block, name)
    for name, child in block.named_children():
        if class_word in type(child).__name__.lower():
            return name, child
    return None


def attention_of(block: nn.Module) -> tuple[str, nn.Module] | None:
    """``(name, module)`` of a block's self-attention sub-layer."""
    return _child(block, ATTENTION_NAMES, "attention")


def mlp_of(block: nn.Module) -> tuple[str, nn.Module] | None:
    """``(name, module)`` of a block's MLP sub-layer."""
    return _child(block, MLP_NAMES, "mlp")


def final_norm(model: nn.Module) -> tuple[str, nn.Module] | None:
    """``(full name, module)`` of the norm applied after the last block (``model.norm``, ``transformer.ln_f``)."""
    blocks_name, _ = find_blocks(model)
    parent = blocks_name.rsplit(".", 1)[0] if "." in blocks_name else ""
    backbone = model.get_submodule(parent)
    norms = [(n, m) for n, m in backbone.named_children() if "norm" in type(m).__name__.lower()]
    if not norms:
        return None
    name, module = norms[-1]
    return (f"{parent}.{name}" if parent else name), module


def output_head(model: nn.Module) -> nn.Module | None:
    """The output projection (``lm_head``), never a LoRA target."""
    getter = getattr(model, "get_output_embeddings", None)
    return getter() if callable(getter) else None


def linear_modules(model: nn.Module) -> Iterator[tuple[str, nn.Module]]:
    """Every linear-like module except the output head."""
    head = output_head(model)
    for name, module in model.named_modules():
        if is_linear_like(module) and module is not head:
            yield name, module


def attention_linear_names(model: nn.Module) -> set[str]:
    """Full names of the linear-like layers inside every block's attention sub-layer (the "attention" preset)."""
    blocks_name, blocks = find_blocks(model)
    names = set()
    for i, block in enumerate(blocks):
        found = attention_of(block)
        if found is None:
            continue
        for sub, module in found[1].named_modules():
            if sub and is_linear_like(module):
                names.add(f"{blocks_name}.{i}.{found[0]}.{sub}")
    return names


def target_presets(model: nn.Module) -> dict[str, list[str]]:
    """Each preset's selection in this model's own module names (short names), e.g. for the UI."""
    return {p: sorted({n.rsplit(".", 1)[-1] for n in find_targets(model, p)}) for p in TARGET_PRESETS}


def _matches(name: str, targets: Union[tuple, str]) -> bool:
    if targets == "all-linear":
        return True
    if isinstance(targets, str):
        return re.fullmatch(targets, name) is not None
    return any(name == t or name.endswith("." + t) for t in targets)


def _available(model: nn.Module) -> str:
    short = sorted({name.rsplit(".", 1)[-1] for name, _ in linear_modules(model)})
    return ", ".join(short) or "(none)"


def find_targets(model: nn.Module, targets: Union[tuple, str]) -> list[str]:
    """Full names of the linear-like modules selected by ``targets``; one UserError listing every target that fails."""
    linear = dict(linear_modules(model))
    if targets == "attention":
        inside = attention_linear_names(model)
        selected = [name for name in linear if name in inside]
    else:
        targets = _with_fused_aliases(model, targets)
        selected = [name for name in linear if _matches(name, targets)]
    problems = []
    if isinstance(targets, tuple):
        all_names = dict(model.named_modules())
        for t in targets:
            hits = [n for n in all_names if n == t or n.endswith("." + t)]
            if not hits:
                problems.append(f"target module {t!r} matches no module")
            elif not any(n in linear for n in hits):
                kind = type(all_names[hits[0]]).__name__
                problems.append(f"target module {t!r} is a {kind}, not a linear layer")
    elif not selected and targets in TARGET_PRESETS:
        problems.append(f"the preset {targets!r} selects no linear layer in this model")
    elif not selected:
        problems.append(f"the regex {targets!r} matches no linear layer (it must match the full module name, "
                        "e.g. 'model.layers.0.self_attn.q_proj'; try r'.*\\.(q_proj|v_proj)')")
    if problems:
        raise UserError(f"LoRA cannot be applied to {type(model).__name__}: " + "; ".join(problems) +
                        f". Linear layers in this model: {_available(model)} (or use 'all-linear').")
    return selected


def _with_fused_aliases(model: nn.Module, targets: Union[tuple, str]) -> Union[tuple, str]:
    """``targets`` with each Llama-style name the model lacks replaced by its fused layer's name (if it has one)."""
    if not isinstance(targets, tuple):
        return targets
    short = {name.rsplit(".", 1)[-1] for name, _ in model.named_modules()}
    out: list[str] = []
    for t in targets:
        alias = next((a for a in FUSED_ALIASES.get(t, ()) if a in short), None) if t not in short else None
        if (alias or t) not in out:
            out.append(alias or t)
    return tuple(out)


def replace_module(model: nn.Module, name: str, new: nn.Module) -> None:
    """Put ``new`` where the sub-module ``name`` is."""
    parent_name, _, child = name.rpartition(".")
    parent = model.get_submodule(parent_name) if parent_name else model
    setattr(parent, child, new)
