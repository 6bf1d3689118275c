"""Configurations of the PEFT methods: one dataclass per method, validated as a whole.

Each ``__post_init__`` collects every problem it finds and raises one :class:`core.errors.UserError`
(a ``ValueError``) that names all of them and says how to fix each, so a user fixes a config in one pass.
``config_from_dict(method, params)`` builds a config from the run config's ``lora:``/``adapter:``/... section.
"""
from __future__ import annotations

import re
from dataclasses import asdict, dataclass, field, fields
from typing import Any, Union

from core.defaults import METHODS
from core.errors import UserError

NONLINEARITIES = ("gelu", "relu", "silu", "tanh")
# Named target selections, resolved per model by structure (core/peft/inject.py: every family names them its way):
# "attention" = the linear layers inside each block's attention, "all-linear" = every linear layer but the head.
TARGET_PRESETS = ("attention", "all-linear")
PRESET_ALIASES = {"all linear": "all-linear", "all_linear": "all-linear", "attn": "attention"}
PLACEMENTS = ("attn", "mlp")
# Each method's default section of a run config (the dataclasses below take their field defaults from here).
DEFAULT_SECTIONS = {
    "lora": {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"]},
    "adapter": {"bottleneck": 64, "nonlinearity": "gelu", "placement": ["attn", "mlp"]},
    "prefix": {"num_virtual_tokens": 20, "projection_dim": 512},
    "full": {},
    "freeze": {"trainable_layers": 2},
}
_LORA, _ADAPTER, _PREFIX = DEFAULT_SECTIONS["lora"], DEFAULT_SECTIONS["adapter"], DEFAULT_SECTIONS["prefix"]


def default_section(method: str) -> dict:
    """A fresh copy of ``method``'s default run-config section."""
    return {k: list(v) if isinstance(v, list) else v for k, v in DEFAULT_SECTIONS[method].items()}


def _raise_if(problems: list[str], what: str) -> None:
    if problems:
        error = UserError(f"Invalid {what} configuration:\n- " + "\n- ".join(problems))
        error.problems = list(problems)  # callers that collect problems read the list, not the text
        raise error


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def _check_dropout(value: Any, name: str, problems: list[str]) -> None:
    if not _is_number(value) or not 0.0 <= value < 1.0:
        problems.append(f"{name}={value!r}: use a probability in [0, 1), e.g. 0.05 (0 disables dropout).")


class _Config:
    """Shared helpers: ``method`` and ``to_dict``."""

    method: str = ""

    def to_dict(self) -> dict:
        """JSON-friendly fields (tuples become lists)."""
        return {k: list(v) if isinstance(v, tuple) else v for k, v in asdict(self).items()}


@dataclass
class LoRAConfig(_Config):
    """LoRA: ``W x + (alpha / r) * B A x`` on the target linear layers (rsLoRA: ``alpha / sqrt(r)``; DoRA option)."""

    r: int = _LORA["r"]
    alpha: float = _LORA["alpha"]
    dropout: float = _LORA["dropout"]
    target_modules: tuple | str = tuple(_LORA["target_modules"])
    use_rslora: bool = False
    use_dora: bool = False
    method: str = field(default="lora", init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.target_modules, list):
            self.target_modules = tuple(self.target_modules)
        if isinstance(self.target_modules, str):
            self.target_modules = PRESET_ALIASES.get(self.target_modules, self.target_modules)
        problems: list[str] = []
        if not _is_int(self.r) or self.r <= 0:
            problems.append(f"r={self.r!r}: the rank must be a positive integer, e.g. 8 (typical 4-64).")
        if not _is_number(self.alpha) or self.alpha <= 0:
            problems.append(f"alpha={self.alpha!r}: use a positive number, usually 2*r (e.g. 16 for r=8).")
        _check_dropout(self.dropout, "dropout", problems)
        problems += _target_problems(self.target_modules)
        for name in ("use_rslora", "use_dora"):
            if not isinstance(getattr(self, name), bool):
                problems.append(f"{name}={getattr(self, name)!r}: use true or false.")
        _raise_if(problems, "LoRA")


def _target_problems(targets: Any) -> list[str]:
    if isinstance(targets, str):
        if targets in TARGET_PRESETS:
            return []
        try:
            re.compile(targets)
        except re.error as exc:
            return [f"target_modules={targets!r} is not a valid regular expression ({exc}); give a list of module "
                    "names such as [q_proj, v_proj], a valid regex, or 'all-linear'."]
        return []
    if not isinstance(targets, tuple) or not targets or not all(isinstance(t, str) and t for t in targets):
        return [f"target_modules={targets!r}: give a non-empty list of module names such as [q_proj, v_proj], "
                "a regex string, or a preset: 'attention' or 'all-linear'."]
    return []


@dataclass
class AdapterConfig(_Config):
    """Houlsby adapters: ``h + up(act(down(h)))`` after the attention and/or MLP output of every block."""

    bottleneck: int = _ADAPTER["bottleneck"]
    nonlinearity: str = _ADAPTER["nonlinearity"]
    placement: tuple = tuple(_ADAPTER["placement"])
    dropout: float = 0.0
    method: str = field(default="adapter", init=False, repr=False)

    def __post_init__(self) -> None:
        if isinstance(self.placement, (list, str)):
            self.placement = (self.placement,) if isinstance(self.placement, str) else tuple(self.placement)
        problems: list[str] = []
        if not _is_int(self.bottleneck) or self.bottleneck <= 0:
            problems.append(f"bottleneck={self.bottleneck!r}: use a positive integer, e.g. 64 (smaller = fewer "
                            "parameters).")
        if self.nonlinearity not in NONLINEARITIES:
            problems.append(f"nonlinearity={self.nonlinearity!r}: choose one of {', '.join(NONLINEARITIES)}.")
        bad = [p for p in self.placement if p not in PLACEMENTS]
        if not self.placement or bad or len(set(self.placement)) != len(self.placement):
            problems.append(f"placement={list(self.placement)!r}: use a non-empty list of distinct values from "
                            f"{list(PLACEMENTS)}, e.g. [attn, mlp].")
        _check_dropout(self.dropout, "dropout", problems)
        _raise_if(problems, "Adapter")


@dataclass
class PrefixConfig(_Config):
    """Prefix tuning: learned key/value prefixes of ``num_virtual_tokens`` for every layer (MLP reparam if dim > 0)."""

    num_virtual_tokens: int = _PREFIX["num_virtual_tokens"]
    projection_dim: int = _PREFIX["projection_dim"]
    method: str = field(default="prefix", init=False, repr=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_int(self.num_virtual_tokens) or self.num_virtual_tokens <= 0:
            problems.append(f"num_virtual_tokens={self.num_virtual_tokens!r}: use a positive integer, e.g. 20.")
        if not _is_int(self.projection_dim) or self.projection_dim < 0:
            problems.append(f"projection_dim={self.projection_dim!r}: use a non-negative integer, e.g. 512 "
                            "(0 = learn the prefixes directly, without the MLP reparameterisation).")
        _raise_if(problems, "Prefix")


@dataclass
class FullConfig(_Config):
    """Full fine-tuning: every parameter trainable (the baseline)."""

    method: str = field(default="full", init=False, repr=False)


@dataclass
class FreezeConfig(_Config):
    """Freeze baseline: only the last ``trainable_layers`` blocks and the final norm are trainable."""

    trainable_layers: int = DEFAULT_SECTIONS["freeze"]["trainable_layers"]
    method: str = field(default="freeze", init=False, repr=False)

    def __post_init__(self) -> None:
        problems: list[str] = []
        if not _is_int(self.trainable_layers) or self.trainable_layers < 0:
            problems.append(f"trainable_layers={self.trainable_layers!r}: use a non-negative integer, e.g. 2 "
                            "(0 trains only the final norm).")
        _raise_if(problems, "Freeze")


CONFIG_CLASSES = {"lora": LoRAConfig, "adapter": AdapterConfig, "prefix": PrefixConfig,
                  "full": FullConfig, "freeze": FreezeConfig}
PeftConfig = Union[LoRAConfig, AdapterConfig, PrefixConfig, FullConfig, FreezeConfig]


def config_from_dict(method: str, params: dict | None = None) -> PeftConfig:
    """Build the config of ``method`` from a dict (the run config's section); unknown keys are errors."""
    if method not in CONFIG_CLASSES:
        raise UserError(f"Unknown method {method!r}; choose one of {', '.join(METHODS)}.")
    cls = CONFIG_CLASSES[method]
    params = dict(params or {})
    params.pop("method", None)  # to_dict() output round-trips
    allowed = [f.name for f in fields(cls) if f.init]
    unknown = sorted(set(params) - set(allowed))
    problems = []
    if unknown:
        hint = f"allowed: {', '.join(allowed)}" if allowed else f"'{method}' takes no parameters"
        problems.append(f"unknown key(s) {', '.join(unknown)} ({hint}).")
    try:
        config = cls(**{k: v for k, v in params.items() if k in allowed})
    except UserError as exc:  # merge with the unknown-key problem so the user sees everything at once
        problems += exc.problems
    _raise_if(problems, method)
    return config


def section_problems(method: str, params: dict | None) -> list[str]:
    """Every problem of a method's run-config section (empty when it is valid)."""
    try:
        config_from_dict(method, params)
    except UserError as exc:
        return list(getattr(exc, "problems", None) or [str(exc)])
    return []
