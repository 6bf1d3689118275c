"""The strategy selector: task, data size, quality report, machine and time budget in; a method that fits out."""
from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field

from core.defaults import DEFAULT_MODEL, TRAIN_DEFAULTS
from core.errors import UserError
from core.strategy.budget import fit_budget, plan_reasons, run_seconds
from core.strategy.calibration import Calibration, data_kind, load_calibration, pick, size_band
from core.strategy.estimator import ResourceEstimator
from core.strategy.machine import GiB, Machine
from core.strategy.objective import time_factor
from core.strategy.reasons import minutes, reason
from core.strategy.rules import (
    LARGE,
    LORA_QV,
    SMALL,
    TYPICAL_TOKENS,
    Choice,
    epochs_for,
    normalize_task,
    quality_notes,
    seq_len_for,
    task_rules,
)
from core.training.optim import recommended_lr

BATCH = TRAIN_DEFAULTS["batch_size"]  # examples per optimizer update the selector aims for (smaller batches accumulate up to it)


@dataclass
class Recommendation:
    """What to train and why: method, its section, the train section, reasons (codes), the runner-up, estimate."""

    task: str
    method: str
    params: dict
    train: dict
    reasons: list              # [{"code", "params"}]
    runner_up: dict            # {"method", "params", "why": [reasons], "why_not": [reasons]}
    estimate: dict             # memory and time of the recommended config
    notes: list = field(default_factory=list)
    config: dict | None = None  # a run config, when the recommendation was made for a dataset
    objective: str = "sft"      # sft, or dpo / orpo for preference pairs
    quality_band: dict | None = None  # what runs of this configuration reached on similar data (calibration table)

    def to_config(self, data: str, model: str = DEFAULT_MODEL, system_prompt: str | None = None) -> dict:
        """A run config with this recommendation filled in."""
        cfg = {"model": model, "data": data, "method": self.method, self.method: dict(self.params),
               "train": dict(self.train)}
        if self.objective != "sft":
            cfg["objective"] = self.objective
        if system_prompt:
            cfg["system_prompt"] = system_prompt
        return cfg

    def to_dict(self) -> dict:
        """JSON-able form."""
        return asdict(self)


class StrategySelector:
    """Recommends a method and its settings for a task, a dataset, this machine and a time budget."""

    def __init__(self, model: str = DEFAULT_MODEL, machine: Machine | None = None,
                 estimator: ResourceEstimator | None = None, calibration: Calibration | str | None = None):
        self.estimator = estimator or ResourceEstimator(model, machine=machine)
        self.machine = self.estimator.machine
        # The measured table the choice follows (a path: a copy, as tests pass; default assets/calibration.json).
        self.calibration = calibration if isinstance(calibration, Calibration) else load_calibration(calibration)
        self.time_scale = 1.0  # real batches' seconds over this selector's typical-length estimate (set by dataset.py)

    def recommend(self, task: str, n_examples: int | None = None, quality: dict | None = None,
                  time_budget_s: float | None = None, fit_steps: bool = True) -> Recommendation:
        """The recommendation; raises UserError when no method fits this machine's memory at all.

        ``fit_steps=False``: the time budget only rules methods out (full fine-tuning); epochs and steps are left
        for the caller to fit (``fit_time_budget`` on the dataset's real batches).
        """
        task = normalize_task(task)
        n = int(n_examples if n_examples is not None else (quality or {}).get("rows") or 0)
        if n < 1:
            raise UserError("The dataset size is unknown or zero: give the number of training examples "
                            "(or a quality report with 'rows').")
        labels = int((quality or {}).get("num_labels") or 0)
        primary, runner = task_rules(task, n, labels)
        seq, seq_note = seq_len_for(task, quality, self.estimator.arch.max_positions)
        mean_tokens = self._mean_tokens(task, quality)
        primary, runner, table_notes = self._measured(task, n, labels, seq, mean_tokens, time_budget_s,
                                                      primary, runner)
        if n >= LARGE and table_notes:  # enough data to use every weight (unless the table measured a better choice)
            primary, runner = self._consider_full(primary, n, seq, mean_tokens, time_budget_s)
        chosen, batch, fitted_seq, fit_notes = self._fit_memory(primary, runner, seq)
        reasons = list(primary.reasons)
        if chosen is not primary:  # the primary did not fit at all: the runner-up takes its place
            reasons = [reason("primary_no_fit", method=primary.method)] + chosen.reasons
            runner = Choice(primary.method, primary.params, primary.reasons, [reason("no_fit_memory")])
            primary = chosen
        objective, factor, runner_up = "sft", 1.0, None
        if task == "preference":
            objective, factor, obj_reasons, runner_up = self._objective(primary, n, batch, fitted_seq, mean_tokens,
                                                                        time_budget_s)
            reasons += obj_reasons
        train, plan = self._train_section(primary, n, batch, fitted_seq, mean_tokens,
                                          time_budget_s if fit_steps else None, factor)
        reasons += table_notes + ([seq_note] if seq_note else []) + fit_notes
        reasons += plan_reasons(plan, time_budget_s if fit_steps else None, n < SMALL)
        band = self.band_for(task, n, labels, primary.method, primary.params, train)
        return Recommendation(task=task, method=primary.method, params=primary.params, train=train, reasons=reasons,
                              runner_up=runner_up or {"method": runner.method, "params": runner.params,
                                                      "why": list(runner.reasons), "why_not": list(runner.against)},
                              estimate=self._estimate(primary, train, plan), notes=quality_notes(quality),
                              objective=objective, quality_band=band)

    def band_for(self, task: str, n: int, labels: int, method: str, params: dict, train: dict) -> dict | None:
        """What runs of this configuration and length reached on similar data; None for a partial epoch."""
        if train.get("max_steps"):  # a run cut short of its epochs is not what the table measured
            return None
        kind = data_kind(task, labels)
        return self.calibration.quality_band(kind, size_band(kind, n, labels), method, params, int(train["epochs"]))

    def _measured(self, task: str, n: int, labels: int, seq: int, mean_tokens: float, budget: float | None,
                  primary: Choice, runner: Choice) -> tuple[Choice, Choice, list]:
        """The calibration table's best configuration that fits the budget, else the rules' (with a note why)."""
        def seconds(c: dict) -> float:
            micro_s, micro_steps = self.epoch_time(c["method"], c["params"], n, BATCH, seq, mean_tokens)
            eval_s = self._eval_s(Choice(c["method"], c["params"], []), n, BATCH, seq, mean_tokens)
            return self.time_scale * run_seconds(c["epochs"] * micro_steps, micro_s, eval_s,
                                                 TRAIN_DEFAULTS["eval_every"])

        chosen, better, notes = pick(self.calibration, task, n, labels, seconds, budget)
        if chosen is None:
            return primary, runner, notes
        if better is None and (primary.method, primary.params) != (chosen.method, chosen.params):
            better = Choice(primary.method, primary.params, primary.reasons, [reason("calibration_unmeasured")])
        return chosen, better or runner, notes

    def _objective(self, choice: Choice, n: int, batch: int, seq: int, mean_tokens: float,
                   budget: float | None) -> tuple[str, float, list, dict]:
        """DPO when its run fits the budget (it stays closer to the base model), else ORPO (no reference pass)."""
        micro_s, micro_steps = self.epoch_time(choice.method, choice.params, n, batch, seq, mean_tokens)
        sft_s = micro_s * micro_steps * (choice.epochs or epochs_for(n, choice.method))
        # Prompt and answer of a pair taken as equal halves of its tokens when nothing says otherwise.
        dpo, orpo = time_factor("dpo", 0.5, 0.5), time_factor("orpo", 0.5, 0.5)
        saved = round(100 * (1 - orpo / dpo))
        numbers = {"dpo_min": minutes(sft_s * dpo), "orpo_min": minutes(sft_s * orpo), "saved": saved}
        if not budget or sft_s * dpo <= budget:
            other = {"method": choice.method, "params": choice.params, "objective": "orpo",
                     "why": [reason("objective_orpo_no_reference", **numbers)],
                     "why_not": [reason("objective_orpo_drifts")]}
            return "dpo", dpo, [reason("objective_dpo", **numbers)], other
        other = {"method": choice.method, "params": choice.params, "objective": "dpo",
                 "why": [reason("objective_dpo_closer")],
                 "why_not": [reason("objective_dpo_over_budget", budget_min=minutes(budget), **numbers)]}
        return "orpo", orpo, [reason("objective_orpo", **numbers)], other

    def _consider_full(self, primary: Choice, n: int, seq: int, mean_tokens: float,
                       budget: float | None) -> tuple[Choice, Choice]:
        """(primary, runner-up) once full fine-tuning is weighed for a large dataset."""
        blocker = self._blocker(Choice("full", {}, []), n, seq, mean_tokens, budget)
        if blocker is None:
            full = Choice("full", {}, [reason("full_enough_data", n=n)])
            return full, Choice(primary.method, primary.params, [reason("peft_forgets_less")],
                                [reason("full_pays_off", n=n)])
        return primary, Choice("full", {}, [reason("full_suits_large", n=n)], [blocker])

    # ------------------------------------------------------------ helpers
    @staticmethod
    def _mean_tokens(task: str, quality: dict | None) -> float:
        lengths = ((quality or {}).get("checks") or {}).get("lengths") or (quality or {}).get("lengths") or {}
        return float(lengths.get("mean") or TYPICAL_TOKENS[task])

    def _fits(self, choice: Choice, batch: int, seq: int) -> bool:
        return self.estimator.memory(choice.method, choice.params, batch_size=batch, seq_len=seq).fits

    def epoch_time(self, method: str, params: dict, n: int, batch: int, seq: int,
                   mean_tokens: float) -> tuple[float, int]:
        """(seconds per micro-batch, micro-batches per epoch) from the dataset's size and typical length."""
        # One example per row (packing is off by default), padded to the batch's longest: about the typical
        # length plus a third (row groups sorted by length trim most of the rest).
        width = int(min(seq, max(16, mean_tokens * 1.3)))
        step = self.estimator.step_time(method, params, batches=[(batch, width, batch * width // 2)]).seconds
        return step, max(1, math.ceil(n / batch))

    def _blocker(self, choice: Choice, n: int, seq: int, mean_tokens: float,
                 budget: float | None) -> dict | None:
        """Why ``choice`` cannot be used at a full batch (memory, or one epoch over the time budget), or None."""
        mem = self.estimator.memory(choice.method, choice.params, batch_size=BATCH, seq_len=seq)
        if not mem.fits:
            return reason("full_no_memory", need_gib=round(mem.total / GiB, 1), budget_gib=round(mem.budget / GiB, 1))
        step_s, steps = self.epoch_time(choice.method, choice.params, n, BATCH, seq, mean_tokens)
        if budget and step_s * steps > budget:
            return reason("full_over_budget", epoch_min=minutes(step_s * steps), budget_min=minutes(budget))
        return None

    def _fit_memory(self, primary: Choice, runner: Choice, seq: int) -> tuple[Choice, int, int, list]:
        """The first of primary, runner-up, light LoRA with the largest batch (8 down to 1) and length that fit."""
        lightest = Choice("lora", dict(LORA_QV), [reason("lora_lightest_fits")])
        for choice in (primary, runner, lightest):
            for s in (seq, 256, 128):
                if s > seq:
                    continue
                for batch in (8, 4, 2, 1):
                    if self._fits(choice, batch, s):
                        notes = [reason("batch_accum", batch=batch, accum=BATCH // batch)] if batch < BATCH else []
                        notes += [reason("seq_lowered", seq=seq, to=s)] if s < seq else []
                        return choice, batch, s, notes
        raise UserError(f"No method fits this machine's memory ({self.machine.describe()}), not even LoRA at batch 1 "
                        "with 128 tokens. Free memory (close other programs) or use a smaller base model.")

    def _train_section(self, choice: Choice, n: int, batch: int, seq: int, mean_tokens: float,
                       budget: float | None, factor: float = 1.0):
        """The train section and the plan behind its epochs and steps (``factor``: an objective's extra passes)."""
        accum = max(1, BATCH // batch)
        micro_s, micro_steps = self.epoch_time(choice.method, choice.params, n, batch, seq, mean_tokens)
        eval_s = self._eval_s(choice, n, batch, seq, mean_tokens) * factor
        plan = fit_budget(choice.epochs or epochs_for(n, choice.method), math.ceil(micro_steps / accum),
                          micro_s * accum * factor, eval_s, TRAIN_DEFAULTS["eval_every"], budget)
        train = {"epochs": plan.epochs, "max_steps": plan.max_steps, "batch_size": batch, "grad_accum": accum,
                 "lr": choice.lr or recommended_lr(choice.method), "max_seq_len": seq,
                 "packing": TRAIN_DEFAULTS["packing"]}
        return train, plan

    def _estimate(self, choice: Choice, train: dict, plan) -> dict:
        mem = self.estimator.memory(choice.method, choice.params, batch_size=train["batch_size"],
                                    seq_len=train["max_seq_len"])
        count = self.estimator.parameters(choice.method, choice.params)
        return {"memory_bytes": mem.total, "memory_budget": mem.budget, "fits": mem.fits,
                "memory_breakdown": mem.breakdown, "trainable": count.trainable, "total_params": count.total,
                "step_s": plan.step_s, "epoch_s": plan.step_s * plan.steps_per_epoch,
                "steps_per_epoch": plan.steps_per_epoch, "total_steps": plan.steps, "eval_s": plan.eval_s,
                "total_s": plan.run_s, "epoch_run_s": plan.epoch_run_s, "full_epochs": plan.full_epochs,
                "wanted_epochs": plan.wanted_epochs, "suggested_budget_min": plan.suggested_budget_min,
                "timing": "benchmark"}

    def _eval_s(self, choice: Choice, n: int, batch: int, seq: int, mean_tokens: float) -> float:
        """Seconds of one evaluation: the trainer scores up to max_eval_examples validation examples (~10%)."""
        val = min(TRAIN_DEFAULTS["max_eval_examples"], max(1, round(n * 0.1)))
        width = int(min(seq, max(16, mean_tokens * 1.3)))  # padded to the longest in each batch
        return self.estimator.forward_time(choice.method, choice.params,
                                           batches=[(batch, width)] * math.ceil(val / batch))
