"""The selector's rules, memory and time-budget fitting, and reasons as codes."""
from __future__ import annotations

import pytest

from core.errors import UserError
from core.strategy import normalize_task
from tests.strategy.helpers import (
    codes,
    english,
    selector,
)

# ---------------------------------------------------------------- the selector's rules
RULES = [  # (task, examples) -> method, key settings
    ("style", 100, "prefix", {"num_virtual_tokens": 20}),
    ("persona", 2000, "lora", {"r": 8, "target_modules": ["q_proj", "v_proj"]}),
    ("knowledge_qa", 100, "lora", {"r": 8, "target_modules": "all-linear"}),
    ("knowledge_qa", 3000, "lora", {"r": 16, "target_modules": "all-linear"}),
    ("classification", 500, "lora", {"r": 8, "target_modules": ["q_proj", "v_proj"]}),
    ("routing", 5000, "adapter", {"bottleneck": 64}),
    ("multi_turn", 100, "lora", {"r": 8, "target_modules": ["q_proj", "v_proj"]}),
    ("chat", 3000, "lora", {"r": 16, "target_modules": ["q_proj", "k_proj", "v_proj", "o_proj"]}),
]


@pytest.mark.parametrize("task,n,method,settings", RULES)
def test_each_task_and_size_gives_the_documented_choice(task, n, method, settings):
    rec = selector().recommend(task, n)
    assert rec.method == method
    assert {k: rec.params[k] for k in settings} == settings
    assert rec.runner_up["method"] != method and rec.runner_up["why_not"] and rec.runner_up["why"]
    assert rec.reasons and all(isinstance(r["code"], str) and isinstance(r["params"], dict) for r in rec.reasons)
    assert rec.estimate["fits"]
    assert rec.train["lr"] > 0 and rec.train["epochs"] >= 1


def test_large_data_gets_full_fine_tuning_when_it_fits():
    rec = selector(64).recommend("knowledge_qa", 50000)
    assert rec.method == "full"
    assert rec.runner_up["method"] == "lora"
    assert rec.train["epochs"] == 1


def test_large_data_on_a_small_machine_never_gets_full_fine_tuning():
    sel = selector(3)
    full_need = sel.estimator.memory("full", batch_size=1, seq_len=128).total
    assert full_need > sel.machine.memory_budget  # the simulated machine really is too small for full
    rec = sel.recommend("knowledge_qa", 50000)
    assert rec.method != "full"
    assert rec.runner_up["method"] == "full" and codes(rec.runner_up["why_not"]) == ["full_no_memory"]
    assert "GiB" in english(rec.runner_up["why_not"])


@pytest.mark.parametrize("gib", [1.6, 2.0, 2.5, 4, 8])
@pytest.mark.parametrize("task,n", [("style", 100), ("knowledge_qa", 3000), ("classification", 5000),
                                    ("multi_turn", 3000), ("knowledge_qa", 50000)])
def test_recommendation_always_fits_memory(gib, task, n):
    sel = selector(gib)
    try:
        rec = sel.recommend(task, n)
    except UserError as exc:  # allowed only when truly nothing fits
        assert "fits" in str(exc)
        assert not sel.estimator.memory("lora", batch_size=1, seq_len=128).fits
        return
    t = rec.train
    need = sel.estimator.memory(rec.method, rec.params, batch_size=t["batch_size"], seq_len=t["max_seq_len"],
                                masked=rec.method == "prefix").total
    assert need <= sel.machine.memory_budget
    assert rec.estimate["memory_bytes"] <= rec.estimate["memory_budget"]


def test_no_method_fits_raises_a_user_error():
    with pytest.raises(UserError, match="smaller base model"):
        selector(0.5).recommend("style", 1000)


def test_time_budget_caps_epochs_or_steps():
    sel = selector(64)
    free = sel.recommend("knowledge_qa", 3000)
    budget = free.estimate["total_s"] / 10
    tight = sel.recommend("knowledge_qa", 3000, time_budget_s=budget)
    assert tight.train["max_steps"] is not None or tight.train["epochs"] < free.train["epochs"]
    assert tight.estimate["total_s"] <= budget * 1.05
    assert "budget" in english(tight.reasons)


def test_time_budget_too_small_for_full_keeps_peft_with_reason():
    sel = selector(64)
    rec = sel.recommend("knowledge_qa", 50000, time_budget_s=600)
    assert rec.method == "lora"
    assert rec.runner_up["method"] == "full" and codes(rec.runner_up["why_not"]) == ["full_over_budget"]


def test_quality_report_sets_sequence_length_and_notes():
    quality = {"rows": 800, "num_labels": 0, "score": 55,
               "checks": {"lengths": {"p95": 180, "mean": 90}},
               "deductions": [{"check": "duplicates", "cause": "120 exact duplicates", "points": 8,
                               "fix": "Prepare with --dedupe."}]}
    rec = selector().recommend("style", quality=quality)
    assert rec.train["max_seq_len"] == 256
    assert "--dedupe" in english(rec.notes) and "quality" in english(rec.notes)


def test_unknown_task_is_a_user_error():
    assert normalize_task("Multi-turn") == "multi_turn"
    with pytest.raises(UserError, match="style"):
        normalize_task("poetry")


def test_recommendation_is_a_valid_run_config():
    from core.training.config import TrainingConfig

    rec = selector().recommend("classification", 5000)
    cfg = TrainingConfig.from_dict(rec.to_config("some-dataset"))
    assert cfg.method == "adapter" and cfg.train.batch_size == rec.train["batch_size"]


