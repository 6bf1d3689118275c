"""The model's structure: dimensions from its config, exact parameter counts and the method's shape (meta model)."""
from __future__ import annotations

import functools
import json
from dataclasses import dataclass, field
from typing import Any

import torch

from core.defaults import METHODS
from core.errors import UserError


@dataclass
class Arch:
    """The dimensions the memory and time formulas need, read from the model config."""

    family: str
    layers: int
    hidden: int
    intermediate: int
    heads: int
    kv_heads: int
    head_dim: int
    vocab: int
    tied: bool
    gated_mlp: bool
    max_positions: int

    @property
    def q_dim(self) -> int:
        """Width of the attention queries (all heads)."""
        return self.heads * self.head_dim

    @property
    def kv_dim(self) -> int:
        """Width of the keys (or values) of all key-value heads."""
        return self.kv_heads * self.head_dim


UNGATED = ("gpt2", "gpt_bigcode", "gpt_neo", "gpt_neox", "gptj", "opt", "bloom", "falcon", "phi")  # plain MLPs


def arch_of(config: Any) -> Arch:
    """Read an :class:`Arch` from a transformers config (Llama-style or GPT-2 names)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    hidden = getattr(text, "hidden_size", None) or text.n_embd
    heads = getattr(text, "num_attention_heads", None) or text.n_head
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    inter = getattr(text, "intermediate_size", None) or getattr(text, "n_inner", None) or 4 * hidden
    return Arch(family=getattr(text, "model_type", "unknown"),
                layers=getattr(text, "num_hidden_layers", None) or text.n_layer, hidden=hidden,
                intermediate=inter, heads=heads, kv_heads=getattr(text, "num_key_value_heads", None) or heads,
                head_dim=head_dim, vocab=text.vocab_size, tied=bool(getattr(text, "tie_word_embeddings", True)),
                gated_mlp=hasattr(text, "intermediate_size") and getattr(text, "model_type", "") not in UNGATED,
                max_positions=getattr(text, "max_position_embeddings", None) or getattr(text, "n_positions", 2048))


@functools.lru_cache(maxsize=16)
def model_config(name: str) -> Any:
    """The transformers config of a model name (no weights are read): the estimator follows the chosen model."""
    from core.models import model_config as read_config

    return read_config(name)


def _peft_config(method: str, params: dict | None):
    from core.peft import config_from_dict

    if method not in METHODS:
        raise UserError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    return config_from_dict(method, dict(params or {}))


@dataclass
class ParamCount:
    """Trainable and total parameters, counted on the built (meta) model, with what the method added."""

    trainable: int
    total: int
    base: int                      # the base model's own parameters (tied embeddings once)
    added: int                     # parameters the method adds (LoRA A/B, adapters, prefix)
    layers: list = field(default_factory=list)  # per trainable module family: [name, count]
    exact: bool = True

    @property
    def share(self) -> float:
        """Trainable share of all parameters."""
        return self.trainable / max(1, self.total)


@dataclass
class MethodShape:
    """What the activation formula needs to know about the injected method, read from the meta model."""

    lora_modules: list = field(default_factory=list)   # [(parent, d_in, d_out, r, dropout)] in one block
    adapters: list = field(default_factory=list)       # [(bottleneck, dropout)] in one block
    prefix_tokens: int = 0
    trainable_blocks: int = 0                          # freeze: how many top blocks train
    block_linear_params: int = 0                       # base matmul weights in one block
    block_params: int = 0


@functools.lru_cache(maxsize=64)
def build_meta(model: str, method: str, params_json: str) -> tuple[ParamCount, MethodShape]:
    """(ParamCount, MethodShape) of ``model`` with ``method`` applied, built on the meta device (no weights)."""
    from transformers import AutoModelForCausalLM

    from core.peft import apply_peft, trainable_parameters

    config = model_config(model)
    cfg = _peft_config(method, json.loads(params_json))
    with torch.device("meta"):
        net = AutoModelForCausalLM.from_config(config)
        base_total = sum(p.numel() for p in net.parameters())
        apply_peft(net, cfg)
    trainable, total = trainable_parameters(net)
    families: dict[str, int] = {}
    for name, p in net.named_parameters():
        if p.requires_grad:
            key = _family(name)
            families[key] = families.get(key, 0) + p.numel()
    count = ParamCount(trainable=trainable, total=total, base=base_total, added=total - base_total,
                       layers=sorted(([k, v] for k, v in families.items()), key=lambda kv: -kv[1]))
    return count, _method_shape(net, cfg)


def _family(name: str) -> str:
    """A parameter name without its layer number, e.g. ``model.layers.*.self_attn.q_proj.lora_A.weight``."""
    return ".".join("*" if part.isdigit() else part for part in name.split("."))


def _method_shape(net, cfg) -> MethodShape:
    from core.peft.inject import find_blocks, is_linear_like

    _, blocks = find_blocks(net)
    block = blocks[0]
    shape = MethodShape()
    for name, mod in block.named_modules():
        if type(mod).__name__ == "LoRALinear":
            drop = getattr(mod.lora_dropout, "p", 0.0)
            parent = name.split(".")[0]
            shape.lora_modules.append((parent, mod.lora_A.in_features, mod.lora_B.out_features, mod.r, drop))
            base = mod.base_layer.weight
            shape.block_linear_params += base.numel()
        elif type(mod).__name__ == "AdapterLayer":
            shape.adapters.append((mod.down.out_features, getattr(mod.dropout, "p", 0.0)))
        elif is_linear_like(mod) and ".adapters." not in f".{name}." and "lora_" not in name \
                and not name.endswith("base_layer"):
            shape.block_linear_params += mod.weight.numel()
    shape.block_params = sum(p.numel() for n, p in block.named_parameters()
                             if "lora_" not in n and "adapters." not in n)
    shape.prefix_tokens = getattr(cfg, "num_virtual_tokens", 0) if cfg.method == "prefix" else 0
    if cfg.method == "freeze":
        shape.trainable_blocks = min(cfg.trainable_layers, len(blocks))
    elif cfg.method != "full":
        shape.trainable_blocks = 0
    else:
        shape.trainable_blocks = len(blocks)
    return shape

