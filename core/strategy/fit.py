"""Whether a config fits this machine's memory, and the smallest change (batch, length, method) that makes it fit."""
from __future__ import annotations

import json
import math
from dataclasses import dataclass
from typing import Any

from core.strategy.estimator import Estimate, ResourceEstimator
from core.strategy.machine import GiB
from core.strategy.reasons import reason, render
from core.strategy.shapes import normalize_config


@dataclass
class FitReport:
    """Whether a config fits this machine's memory, what is wrong, and the smallest change that fixes it."""

    fits: bool
    memory: int
    budget: int
    problems: list                # reasons (codes with parameters)
    suggestion: dict | None    # e.g. {"train.batch_size": 2, "train.grad_accum": 4}
    suggestion_text: str = ""     # the suggestion in English (the CLI's)
    suggestion_reason: dict | None = None  # the suggestion as a code with parameters (the UI translates it)


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
    problems = [reason("fit_needs", need_gib=round(need / GiB, 2), budget_gib=round(budget / GiB, 2),
                       device=est.machine.device)]
    for change, why in _candidate_changes(cfg):
        trial = cfg
        for key, value in change.items():
            trial = _set(trial, key, value)
        trial_need = _config_memory(est, trial)
        if trial_need <= budget:
            why["params"]["then_gib"] = round(trial_need / GiB, 2)
            return FitReport(False, need, budget, problems, change, render(why), why)
    problems.append(reason("fit_nothing"))
    return FitReport(False, need, budget, problems, None, render(reason("fit_nothing")), reason("fit_nothing"))


def _candidate_changes(cfg: dict):
    """(change, reason) from least to most disruptive."""
    tc, method = cfg["train"], cfg["method"]
    b, accum, T = tc["batch_size"], tc["grad_accum"], tc["max_seq_len"]
    batch = b
    while batch > 1:
        batch = max(1, batch // 2)
        new_accum = accum * math.ceil(b / batch)
        yield ({"train.batch_size": batch, "train.grad_accum": new_accum},
               reason("fit_smaller_batch", batch=b, to=batch, accum=new_accum, per_update=b * accum))
    seq = T
    while seq > 128:
        seq = max(128, seq // 2)
        yield ({"train.max_seq_len": seq}, reason("fit_shorter_seq", seq=T, to=seq))
    for lighter in ("lora", "prefix"):
        if lighter != method:
            yield ({"method": lighter}, reason("fit_lighter_method", method=method, to=lighter))
            batch = b
            while batch > 1:
                batch = max(1, batch // 2)
                new_accum = accum * math.ceil(b / batch)
                yield ({"method": lighter, "train.batch_size": batch, "train.grad_accum": new_accum},
                       reason("fit_lighter_smaller_batch", to=lighter, batch=batch, accum=new_accum))
    for lighter in ("lora", "prefix"):
        yield ({"method": lighter, "train.batch_size": 1, "train.grad_accum": b * accum, "train.max_seq_len": 128},
               reason("fit_lightest", to=lighter, accum=b * accum))



def checked_estimate(config: Any, estimator: ResourceEstimator | None = None) -> Estimate:
    """The estimate of a config, with its problems and the smallest change that fits when it does not."""
    cfg = normalize_config(config)
    est = estimator or ResourceEstimator(cfg["model"])
    result = est.estimate(cfg)
    if not result.memory.fits:
        report = fit_check(cfg, estimator=est)
        result.problems, result.suggestion = report.problems, report.suggestion
    return result
