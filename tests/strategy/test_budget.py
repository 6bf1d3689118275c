"""The one time-budget fitter and the reasons it gives from the same numbers as the train section."""
from __future__ import annotations

import math

import pytest

from core.strategy import MIN_BUDGET_STEPS, fit_budget, render, run_seconds
from core.strategy.budget import plan_reasons


def test_whole_epochs_when_the_budget_allows_them():
    plan = fit_budget(3, 100, 1.0, 5.0, 50, budget_s=10_000)
    assert (plan.epochs, plan.max_steps, plan.steps) == (3, None, 300)
    assert plan.run_s == run_seconds(300, 1.0, 5.0, 50) == 300 + 6 * 5.0


def test_fewer_epochs_before_a_step_cap():
    plan = fit_budget(3, 100, 1.0, 5.0, 50, budget_s=250)
    assert (plan.epochs, plan.max_steps) == (2, None) and plan.run_s <= 250


def test_part_of_an_epoch_uses_the_real_eval_interval():
    """The step cap counts evaluations at the config's own interval (not a fixed 50)."""
    every10 = fit_budget(1, 100, 1.0, 5.0, 10, budget_s=60)
    every50 = fit_budget(1, 100, 1.0, 5.0, 50, budget_s=60)
    assert every10.max_steps < every50.max_steps
    for plan, every in ((every10, 10), (every50, 50)):
        assert run_seconds(plan.max_steps, 1.0, 5.0, every) <= 60 < run_seconds(plan.max_steps + 1, 1.0, 5.0, every)


def test_never_below_the_minimum_steps():
    plan = fit_budget(2, 100, 10.0, 0.0, 50, budget_s=1)
    assert (plan.epochs, plan.max_steps) == (1, MIN_BUDGET_STEPS)


def test_a_partial_epoch_says_so_and_suggests_the_budget_for_one():
    plan = fit_budget(3, 100, 1.0, 5.0, 50, budget_s=60)
    assert not plan.full_epochs
    item, suggest = plan_reasons(plan, 60, small_data=True)
    assert item["code"] == "budget_partial_epoch"
    assert suggest["code"] == "budget_suggest" and suggest["params"]["suggested_min"] == plan.suggested_budget_min
    assert plan.suggested_budget_min == item["params"]["epoch_min"] and f"{plan.suggested_budget_min} min" in render(suggest)
    assert item["params"]["epoch_min"] == math.ceil(run_seconds(100, 1.0, 5.0, 50) / 60)
    assert item["params"]["steps"] == plan.max_steps and item["params"]["per_epoch"] == 100
    text = render(item)
    assert "not enough for one full epoch" in text and f"{item['params']['epoch_min']} min" in text


def test_reasons_state_the_planned_epochs():
    plan = fit_budget(3, 100, 1.0, 5.0, 50, budget_s=250)
    reasons = plan_reasons(plan, 250, small_data=False)
    assert [r["code"] for r in reasons] == ["epochs_large_data", "budget_fewer_epochs"]
    assert reasons[1]["params"]["epochs"] == plan.epochs == 2 and reasons[1]["params"]["steps"] == 200


@pytest.mark.parametrize("budget", [None, 10_000])
def test_no_cap_without_a_tight_budget(budget):
    plan = fit_budget(2, 7, 1.0, 0.0, 50, budget_s=budget)
    assert plan.full_epochs and plan.steps == 14
