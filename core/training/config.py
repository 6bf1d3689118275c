"""The run config as dataclasses: load from YAML/JSON or a dict, validate everything at once, save as JSON.

Every problem found (unknown keys, wrong types, out-of-range values, a bad method section) is collected and raised
as one :class:`~core.errors.UserError`, so a user fixes the whole file in one go instead of one error per run.
"""
from __future__ import annotations

import difflib
import json
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

from core.defaults import DEFAULT_MODEL, METHODS, OBJECTIVES, TRAIN_DEFAULTS
from core.errors import UserError
from core.peft.config import (
    PeftConfig,
    config_from_dict,
    default_section,
    section_problems,
)

SCHEDULERS = ("cosine", "linear", "constant")
DPO_BETA = 0.1     # DPO's KL strength, TRL's DPOConfig default
ORPO_LAMBDA = 0.1  # ORPO's odds-ratio weight, TRL's ORPOConfig.beta default
# metrics.jsonl fields of a preference step (means over the step's pairs); the Train page plots them when present
PREFERENCE_METRICS = ("reward_margin", "reward_accuracy", "reward_chosen", "reward_rejected", "logp_chosen",
                      "logp_rejected")
SECTION_KEYS = METHODS
DEVICES = ("auto", "cpu", "cuda")


def _close(name: str, choices) -> str:
    match = difflib.get_close_matches(name, list(choices), n=1)
    return f" (did you mean '{match[0]}'?)" if match else ""


def _is_int(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool)


def _is_num(v: Any) -> bool:
    return isinstance(v, (int, float)) and not isinstance(v, bool)


class _Validated:
    """Dataclasses that list every problem in ``problems()`` and refuse to exist with any."""

    def problems(self) -> list[str]:
        raise NotImplementedError

    def __post_init__(self) -> None:
        problems = self.problems()
        if problems:
            raise UserError(_format_problems(problems))


@dataclass
class TrainSection(_Validated):
    """The ``train:`` section: optimisation, schedule, checkpointing and evaluation knobs."""

    epochs: float = TRAIN_DEFAULTS["epochs"]
    max_steps: int | None = TRAIN_DEFAULTS["max_steps"]            # overrides epochs when set
    batch_size: int = TRAIN_DEFAULTS["batch_size"]  # per device (global = batch_size x world size x grad_accum)
    grad_accum: int = TRAIN_DEFAULTS["grad_accum"]
    lr: float | None = TRAIN_DEFAULTS["lr"]  # None: the method's recommended rate (core.training.optim)
    scheduler: str = TRAIN_DEFAULTS["scheduler"]
    warmup_ratio: float = TRAIN_DEFAULTS["warmup_ratio"]
    weight_decay: float = TRAIN_DEFAULTS["weight_decay"]
    max_seq_len: int = TRAIN_DEFAULTS["max_seq_len"]
    packing: bool = TRAIN_DEFAULTS["packing"]  # ignored (off) for prefix tuning
    eval_every: int = TRAIN_DEFAULTS["eval_every"]
    save_every: int = TRAIN_DEFAULTS["save_every"]
    seed: int = TRAIN_DEFAULTS["seed"]
    early_stopping_patience: int | None = TRAIN_DEFAULTS["early_stopping_patience"]  # evals without improvement
    max_grad_norm: float | None = TRAIN_DEFAULTS["max_grad_norm"]  # gradient clipping; None/0 disables
    keep_checkpoints: int = TRAIN_DEFAULTS["keep_checkpoints"]  # keep the last k checkpoints
    max_train_examples: int | None = TRAIN_DEFAULTS["max_train_examples"]  # only the first N conversations
    max_eval_examples: int | None = TRAIN_DEFAULTS["max_eval_examples"]  # validation examples per evaluation
    eval_batch_size: int | None = TRAIN_DEFAULTS["eval_batch_size"]  # default: batch_size
    nonfinite_patience: int = TRAIN_DEFAULTS["nonfinite_patience"]  # consecutive non-finite steps before failing
    min_lr_ratio: float = TRAIN_DEFAULTS["min_lr_ratio"]  # cosine/linear decay floor as a fraction of lr
    device: str = TRAIN_DEFAULTS["device"]  # auto | cpu | cuda
    micro_batch_tokens: int = TRAIN_DEFAULTS["micro_batch_tokens"]  # rows x width per forward+backward group
    # Seconds per optimizer step the recommendation measured on this machine; the trainer warns when the real
    # speed falls well below it. None: no estimate (a hand-written config).
    expected_step_s: float | None = None

    def problems(self) -> list[str]:
        """Every problem in this section, as user-facing sentences."""
        p: list[str] = []
        if not _is_num(self.epochs) or self.epochs <= 0:
            p.append(f"train.epochs must be a positive number, got {self.epochs!r}.")
        for name in ("batch_size", "grad_accum", "max_seq_len", "eval_every", "save_every", "keep_checkpoints",
                     "nonfinite_patience", "micro_batch_tokens"):
            v = getattr(self, name)
            if not _is_int(v) or v < 1:
                p.append(f"train.{name} must be a whole number >= 1, got {v!r}.")
        for name in ("max_steps", "early_stopping_patience", "max_train_examples", "max_eval_examples",
                     "eval_batch_size"):
            v = getattr(self, name)
            if v is not None and (not _is_int(v) or v < 1):
                p.append(f"train.{name} must be null or a whole number >= 1, got {v!r}.")
        if self.lr is not None and (not _is_num(self.lr) or not 0 < self.lr < 1):
            p.append(f"train.lr must be null (recommended rate) or a number between 0 and 1 such as 2e-4, got {self.lr!r}.")
        if self.scheduler not in SCHEDULERS:
            p.append(f"train.scheduler must be one of {', '.join(SCHEDULERS)}, got {self.scheduler!r}"
                     f"{_close(str(self.scheduler), SCHEDULERS)}.")
        if not _is_num(self.warmup_ratio) or not 0 <= self.warmup_ratio < 1:
            p.append(f"train.warmup_ratio must be a number in [0, 1), e.g. 0.05, got {self.warmup_ratio!r}.")
        if not _is_num(self.weight_decay) or self.weight_decay < 0:
            p.append(f"train.weight_decay must be a number >= 0, got {self.weight_decay!r}.")
        if not isinstance(self.packing, bool):
            p.append(f"train.packing must be true or false, got {self.packing!r}.")
        if not _is_int(self.seed):
            p.append(f"train.seed must be a whole number, got {self.seed!r}.")
        if self.max_grad_norm is not None and (not _is_num(self.max_grad_norm) or self.max_grad_norm < 0):
            p.append(f"train.max_grad_norm must be null or a number >= 0, got {self.max_grad_norm!r}.")
        if not _is_num(self.min_lr_ratio) or not 0 <= self.min_lr_ratio <= 1:
            p.append(f"train.min_lr_ratio must be a number in [0, 1], got {self.min_lr_ratio!r}.")
        if self.expected_step_s is not None and (not _is_num(self.expected_step_s) or self.expected_step_s <= 0):
            p.append(f"train.expected_step_s must be null or a number of seconds > 0, got {self.expected_step_s!r}.")
        if self.device not in DEVICES:
            p.append(f"train.device must be one of {', '.join(DEVICES)}, got {self.device!r}.")
        return p


@dataclass
class TrainingConfig(_Validated):
    """A whole run config. Build with :meth:`from_dict` / :meth:`from_file`; invalid input raises UserError."""

    data: str = ""
    model: str = DEFAULT_MODEL
    system_prompt: str | None = None
    method: str = "lora"
    objective: str = "sft"                # sft | dpo | orpo
    beta: float = DPO_BETA                # dpo only
    orpo_lambda: float = ORPO_LAMBDA      # orpo only
    name: str | None = None               # optional human label, used as the run id prefix
    lora: dict = field(default_factory=lambda: default_section("lora"))
    adapter: dict = field(default_factory=lambda: default_section("adapter"))
    prefix: dict = field(default_factory=lambda: default_section("prefix"))
    full: dict = field(default_factory=lambda: default_section("full"))
    freeze: dict = field(default_factory=lambda: default_section("freeze"))
    train: TrainSection = field(default_factory=TrainSection)

    # ------------------------------------------------------------ validation
    def problems(self) -> list[str]:
        """Every problem in the config (empty when valid)."""
        p: list[str] = []
        if not isinstance(self.data, str) or not self.data.strip():
            p.append("data is missing: give a dataset id, a dataset folder or a data file, "
                     "e.g. `data: workspace/datasets/support-faq`.")
        if not isinstance(self.model, str) or not self.model.strip():
            p.append("model must be a model name or folder, e.g. `model: smollm2-135m-instruct`.")
        if self.system_prompt is not None and not isinstance(self.system_prompt, str):
            p.append(f"system_prompt must be text or null, got {type(self.system_prompt).__name__}.")
        if self.name is not None and not isinstance(self.name, str):
            p.append(f"name must be text or null, got {self.name!r}.")
        if self.method not in METHODS:
            p.append(f"method must be one of {', '.join(METHODS)}, got {self.method!r}{_close(str(self.method), METHODS)}.")
        p.extend(self._objective_problems())
        for key in SECTION_KEYS:
            if not isinstance(getattr(self, key), dict):
                p.append(f"{key}: must be a mapping such as {{r: 8}}, got {getattr(self, key)!r}.")
        if isinstance(self.train, TrainSection):
            p.extend(self.train.problems())
        if self.method in METHODS and isinstance(self.method_params, dict):
            p.extend(_method_section_problems(self.method, self.method_params))
        return p

    def _objective_problems(self) -> list[str]:
        p: list[str] = []
        if self.objective not in OBJECTIVES:
            p.append(f"objective must be one of {', '.join(OBJECTIVES)}, got {self.objective!r}"
                     f"{_close(str(self.objective), OBJECTIVES)}.")
        if not _is_num(self.beta) or not 0 < self.beta <= 10:
            p.append(f"beta must be a number in (0, 10] such as 0.1, got {self.beta!r}.")
        if not _is_num(self.orpo_lambda) or not 0 < self.orpo_lambda <= 10:
            p.append(f"orpo_lambda must be a number in (0, 10] such as 0.1, got {self.orpo_lambda!r}.")
        return p

    @property
    def is_preference(self) -> bool:
        """Whether the run trains on preference pairs (DPO or ORPO) rather than conversations."""
        return self.objective in ("dpo", "orpo")

    # ------------------------------------------------------------ accessors
    @property
    def method_params(self) -> dict:
        """The section of the chosen method (``lora:`` for lora, ...)."""
        return getattr(self, self.method, {}) if self.method in METHODS else {}

    def peft_config(self) -> PeftConfig:
        """The core.peft config object of the chosen method."""
        return config_from_dict(self.method, dict(self.method_params))

    def to_dict(self) -> dict:
        """Plain JSON-able dict (round-trips through :meth:`from_dict`)."""
        return asdict(self)

    def save(self, path: str | Path) -> None:
        """Write the full config as JSON atomically (the run folder's config.json)."""
        from core.fileio import atomic_write_json

        atomic_write_json(path, self.to_dict())

    # ------------------------------------------------------------ construction
    @classmethod
    def from_dict(cls, d: Any) -> TrainingConfig:
        """Validate a dict (e.g. parsed YAML); every problem is listed in one UserError."""
        if not isinstance(d, dict):
            raise UserError(f"A run config must be a mapping (key: value lines), got {type(d).__name__}.")
        problems: list[str] = []
        top = {f.name for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key not in top:
                problems.append(f"unknown key '{key}'{_close(str(key), top)}; allowed: {', '.join(sorted(top))}.")
            elif key == "train":
                kwargs["train"] = value
            else:
                kwargs[key] = value
        for key in SECTION_KEYS:  # a section given as null means "defaults"
            if key in kwargs and kwargs[key] is None:
                del kwargs[key]
        train_raw = kwargs.pop("train", None) or {}
        train = TrainSection()
        if not isinstance(train_raw, dict):
            problems.append(f"train: must be a mapping such as {{epochs: 3, batch_size: 8}}, got {train_raw!r}.")
        else:
            train_names = {f.name for f in fields(TrainSection)}
            good = {}
            for key, value in train_raw.items():
                if key not in train_names:
                    problems.append(f"unknown key 'train.{key}'{_close(str(key), train_names)}.")
                else:
                    good[key] = value
            train = _unchecked(TrainSection, good)
        # Defaults first, user values on top, so partial sections keep the other defaults.
        base = _unchecked(cls, {})
        for key in SECTION_KEYS:
            if isinstance(kwargs.get(key), dict):
                merged = dict(getattr(base, key))
                merged.update(kwargs[key])
                kwargs[key] = merged
        for key, value in kwargs.items():
            setattr(base, key, value)
        base.train = train
        problems.extend(base.problems())
        if problems:
            raise UserError(_format_problems(problems))
        return base

    @classmethod
    def from_file(cls, path: str | Path) -> TrainingConfig:
        """Load a YAML or JSON run config file."""
        path = Path(path)
        if not path.is_file():
            raise UserError(f"The config file {str(path)!r} does not exist; check the path given to --config.")
        text = path.read_text(encoding="utf-8")
        try:
            if path.suffix.lower() == ".json":
                data = json.loads(text)
            else:
                import yaml

                data = yaml.safe_load(text)
        except Exception as exc:
            raise UserError(f"{path} is not valid {'JSON' if path.suffix.lower() == '.json' else 'YAML'}: {exc}. "
                            "Fix the syntax (indentation, quotes, colons) and try again.") from exc
        if data is None:
            raise UserError(f"{path} is empty; it needs at least `data: <dataset or file>`.")
        return cls.from_dict(data)


def _unchecked(cls, values: dict):
    """An instance with defaults then ``values``, skipping __post_init__ so problems can be collected first."""
    obj = object.__new__(cls)
    for f in fields(cls):
        default = f.default_factory() if callable(f.default_factory) else f.default  # type: ignore[misc]
        setattr(obj, f.name, values.get(f.name, default))
    return obj


def _method_section_problems(method: str, params: dict) -> list[str]:
    """core.peft's problems with the chosen method's section, each prefixed with the method."""
    return [f"{method}: {item}" for item in section_problems(method, dict(params))]


def _format_problems(problems: list[str]) -> str:
    n = len(problems)
    head = f"The run config has {n} problem{'s' if n > 1 else ''}:"
    return head + "".join(f"\n  - {p}" for p in problems)
