"""Fit a run to a time budget: the one fitter the selector and the dataset re-timing share."""
from __future__ import annotations

import math
from dataclasses import dataclass

from core.strategy.reasons import minutes, reason

MIN_BUDGET_STEPS = 10  # a time budget never cuts a run below this many steps


@dataclass
class Plan:
    """How long a run is: epochs, an optional step cap, and what that costs."""

    epochs: int
    max_steps: int | None
    steps: int              # optimizer steps the run makes
    steps_per_epoch: int
    step_s: float
    eval_s: float           # seconds of one evaluation
    run_s: float            # seconds, evaluations included
    epoch_run_s: float      # seconds one whole epoch takes, evaluations included
    wanted_epochs: int

    @property
    def full_epochs(self) -> bool:
        """Whether the run sees all the data at least once."""
        return self.max_steps is None

    @property
    def suggested_budget_min(self) -> int | None:
        """Whole minutes that would cover one epoch, when the budget cut the run short of it; else None."""
        return None if self.full_epochs else math.ceil(self.epoch_run_s / 60)


def run_seconds(steps: int, step_s: float, eval_s: float, eval_every: int) -> float:
    """A run's seconds: its steps plus an evaluation every ``eval_every`` steps and one at the end."""
    return steps * step_s + math.ceil(steps / max(1, eval_every)) * eval_s


def fit_budget(wanted_epochs: int, steps_per_epoch: int, step_s: float, eval_s: float, eval_every: int,
               budget_s: float | None) -> Plan:
    """The most epochs up to ``wanted_epochs`` that fit ``budget_s``; else one epoch capped by ``max_steps``."""
    per_epoch = max(1, int(steps_per_epoch))

    def cost(steps: int) -> float:
        return run_seconds(steps, step_s, eval_s, eval_every)

    def plan(epochs: int, max_steps: int | None) -> Plan:
        steps = max_steps or epochs * per_epoch
        return Plan(epochs, max_steps, steps, per_epoch, step_s, eval_s, cost(steps), cost(per_epoch), wanted_epochs)

    wanted = max(1, int(wanted_epochs))
    if not budget_s:
        return plan(wanted, None)
    for epochs in range(wanted, 0, -1):
        if cost(epochs * per_epoch) <= budget_s:
            return plan(epochs, None)
    lo, hi = MIN_BUDGET_STEPS, max(MIN_BUDGET_STEPS, per_epoch - 1)
    while lo < hi:  # the largest step count that fits (cost grows with steps), never below the minimum
        mid = (lo + hi + 1) // 2
        lo, hi = (mid, hi) if cost(mid) <= budget_s else (lo, mid - 1)
    return plan(1, lo)


def plan_reasons(plan: Plan, budget_s: float | None, small_data: bool) -> list[dict]:
    """What the run's length is and why, from the same numbers as its train section."""
    why = reason("epochs_small_data" if small_data else "epochs_large_data", epochs=plan.wanted_epochs)
    if not budget_s:
        return [why]
    numbers = {"steps": plan.steps, "per_epoch": plan.steps_per_epoch, "step_s": round(plan.step_s, 2),
               "budget_min": minutes(budget_s), "run_min": minutes(plan.run_s)}
    if not plan.full_epochs:
        share = round(100.0 * plan.steps / plan.steps_per_epoch)
        code = "budget_partial_epoch" if plan.run_s <= budget_s else "budget_below_minimum"
        # Never less than one epoch without saying so, and the budget that would fit one.
        return [reason(code, share=share, epoch_min=plan.suggested_budget_min, **numbers),
                reason("budget_suggest", suggested_min=plan.suggested_budget_min, budget_min=numbers["budget_min"])]
    if plan.epochs < plan.wanted_epochs:
        return [why, reason("budget_fewer_epochs", epochs=plan.epochs, wanted=plan.wanted_epochs, **numbers)]
    return [why, reason("budget_fits", epochs=plan.epochs, **numbers)]


# The reasons about a run's length: replaced as a whole when the run is re-timed on real batches.
PLAN_CODES = ("epochs_small_data", "epochs_large_data", "budget_partial_epoch", "budget_below_minimum",
              "budget_fewer_epochs", "budget_fits", "budget_suggest")
