"""Choose a fine-tuning method and predict what a run costs before anything runs.

* :class:`ResourceEstimator` (estimator.py) — exact trainable and total parameters (the model built on the ``meta``
  device with the real ``core.peft.apply_peft``), peak memory by part, and time per step / epoch / run from the
  dataset's real batches (shapes.py) and a measured micro-benchmark of this machine (machine.py).
* :class:`StrategySelector` (selector.py, rules.py) — task kind, dataset size, quality report, machine and time
  budget in; a method with hyperparameters, reasons (codes, reasons.py) and the runner-up out. Never a config that
  does not fit. :func:`recommend_for_dataset` (dataset.py) re-times it on the dataset's own batches right now.
* :func:`fit_time_budget` / :func:`fit_budget` (budget.py) — the one fitter of epochs and steps to a time budget.
* :func:`fit_check` (fit.py) — the problems of a config on this machine and the smallest change that fits.
* :func:`load_calibration` (calibration.py) — the measured table (assets/calibration.json) the selector follows:
  the best measured configuration that fits the budget, and the quality band similar runs reached.
* objective.py — what DPO and ORPO cost against SFT, counted in passes (the estimator and the selector use it).
* :func:`estimate_command`, :func:`recommend_command` (cli.py) — ``python -m core estimate --config RUN.yaml`` and
  ``python -m core recommend DATA [--budget MIN] [--out run.yaml] [--json]``.

    from core.strategy import ResourceEstimator, StrategySelector, fit_check
    est = ResourceEstimator(DEFAULT_MODEL)
    est.parameters("lora", {"r": 8})                             # ParamCount(trainable=..., total=..., ...)
    est.memory("full", batch_size=4, seq_len=512).breakdown      # bytes per part; .fits against the budget
    est.estimate(config_dict_or_TrainingConfig)                  # params + memory + time per step/epoch/run
    rec = StrategySelector().recommend("knowledge_qa", 3000, time_budget_s=3600)
    rec.method, rec.params, rec.train, rec.reasons, rec.runner_up, rec.to_config("my-dataset")
"""
from core.strategy.arch import Arch, MethodShape, ParamCount, arch_of, model_config
from core.strategy.budget import MIN_BUDGET_STEPS, Plan, fit_budget, run_seconds
from core.strategy.calibration import Calibration, load_calibration
from core.strategy.cli import estimate_command, format_estimate, human, recommend_command
from core.strategy.dataset import fit_time_budget, recommend_for_dataset
from core.strategy.estimator import BYTES, CAL, Estimate, MemoryEstimate, ResourceEstimator, StepTime
from core.strategy.fit import FitReport, checked_estimate, fit_check
from core.strategy.loss_profile import LossProfile, loss_profile
from core.strategy.machine import GiB, Machine, MachineSpeed, MiB, machine_speed, measure_machine, probe_speed
from core.strategy.reasons import reason, render
from core.strategy.rules import (ADAPTER, LARGE, LORA_ALL, LORA_ATTN, LORA_QV, PREFIX, SMALL, TASK_ALIASES, TASKS,
                                 TINY, Choice, normalize_task)
from core.strategy.selector import Recommendation, StrategySelector
from core.strategy.shapes import dataset_shapes, normalize_config

__all__ = [
    "ADAPTER", "Arch", "BYTES", "CAL", "Calibration", "Choice", "Estimate", "FitReport", "GiB", "LARGE", "LORA_ALL", "LORA_ATTN",
    "LORA_QV", "LossProfile", "MIN_BUDGET_STEPS", "Machine", "MachineSpeed", "MemoryEstimate", "MethodShape",
    "MiB", "PREFIX", "ParamCount", "Plan", "Recommendation", "ResourceEstimator", "SMALL", "StepTime",
    "StrategySelector", "TASKS", "TASK_ALIASES", "TINY", "arch_of", "dataset_shapes", "estimate_command",
    "checked_estimate", "fit_budget", "fit_check", "fit_time_budget", "format_estimate", "human", "load_calibration", "loss_profile", "machine_speed",
    "measure_machine", "model_config", "normalize_config", "normalize_task", "probe_speed", "reason",
    "recommend_command", "recommend_for_dataset", "render", "run_seconds",
]
