"""Whether a config fits this machine's memory, and the smallest change (batch, length, method) that makes it fit."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core.strategy.estimator import ResourceEstimator
from core.strategy.machine import GiB
from core.strategy.shapes import normalize_config


@dataclass
class FitReport:
    """Whether a config fits this machine's memory, what is wrong, and the smallest change that fixes it."""

    fits: bool
    memory: int
    budget: int
    problems: list
    suggestion: dict | None    # e.g. {"train.batch_size": 2, "train.grad_accum": 4}
    suggestion_text: str = ""


def _set(cfg: dict, dotted: str, value) -> dict:
    out = json.loads(json.dumps(cfg, default=list))
    if "." in dotted:
        sec, key = dotted.split(".", 1)
        out.setdefault(sec, {})[key] = value
    else:
        out[dotted] = value
    return out


def _config_memory(est: ResourceEstimator, cfg: dict) -> int:
    tc, method = cfg["train"], cfg["method"]
    return est.memory(method, cfg.get(method) or {}, batch_size=tc["batch_size"], seq_len=tc["max_seq_len"],
                      masked=True).total


def fit_check(config: Any, estimator: ResourceEstimator | None = None) -> FitReport:
    """Problems of ``config`` on this machine and the smallest change that makes it fit.

    Changes are tried from least to most disruptive: a smaller batch (grad_accum raised so the effective batch
    stays the same), then a shorter max_seq_len (at least 128), then a lighter method (LoRA, then prefix) with
    the original settings, then a lighter method with a smaller batch. The first change that fits is returned.
    """
    cfg = normalize_config(config)
    est = estimator or ResourceEstimator(cfg["model"])
    need, budget = _config_memory(est, cfg), est.machine.memory_budget
    if need <= budget:
        return FitReport(True, need, budget, [], None)
    problems = [f"The run needs about {need / GiB:.2f} GiB but this machine has {budget / GiB:.2f} GiB to spare "
                f"({est.machine.describe()})."]
    for change, text in _candidate_changes(cfg):
        trial = cfg
        for key, value in change.items():
            trial = _set(trial, key, value)
        if _config_memory(est, trial) <= budget:
            trial_need = _config_memory(est, trial)
            return FitReport(False, need, budget, problems, change,
                             f"{text} (then about {trial_need / GiB:.2f} GiB).")
    problems.append("Nothing smaller fits either (batch 1, 128 tokens, LoRA): free memory, or use a smaller model.")
    return FitReport(False, need, budget, problems, None,
                     "No change to batch, sequence length or method makes it fit; free memory or use a smaller model.")


def _candidate_changes(cfg: dict):
    """(change, explanation) from least to most disruptive."""
    tc, method = cfg["train"], cfg["method"]
    b, accum, T = tc["batch_size"], tc["grad_accum"], tc["max_seq_len"]
    batch = b
    while batch > 1:
        batch = max(1, batch // 2)
        new_accum = accum * math.ceil(b / batch)
        yield ({"train.batch_size": batch, "train.grad_accum": new_accum},
               f"Lower train.batch_size from {b} to {batch} and raise train.grad_accum to {new_accum} "
               f"(the same {b * accum} examples per update)")
    seq = T
    while seq > 128:
        seq = max(128, seq // 2)
        yield ({"train.max_seq_len": seq}, f"Shorten train.max_seq_len from {T} to {seq} tokens "
                                            "(longer examples are truncated)")
    for lighter in ("lora", "prefix"):
        if lighter != method:
            yield ({"method": lighter}, f"Switch the method from {method} to {lighter}, which needs far less memory")
            batch = b
            while batch > 1:
                batch = max(1, batch // 2)
                new_accum = accum * math.ceil(b / batch)
                yield ({"method": lighter, "train.batch_size": batch, "train.grad_accum": new_accum},
                       f"Switch to {lighter} and lower train.batch_size to {batch} "
                       f"(train.grad_accum {new_accum})")
    for lighter in ("lora", "prefix"):
        yield ({"method": lighter, "train.batch_size": 1, "train.grad_accum": b * accum, "train.max_seq_len": 128},
               f"Switch to {lighter}, batch 1 (grad_accum {b * accum}) and 128-token sequences")

