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




# ---------------------------------------------------------------- the truth of the reasons
def test_runner_up_why_is_its_merit_and_why_not_its_drawback():
    rec = selector().recommend("knowledge_qa", 3000)
    runner = rec.runner_up
    assert runner["why"] and runner["why_not"] and runner["why"] != runner["why_not"]
    assert codes(runner["why"]) == ["adapter_learns_facts"] and codes(runner["why_not"]) == ["adapter_serial_latency"]


@pytest.mark.parametrize("n,budget", [(500, None), (3000, None), (3000, 1e9)])
def test_total_time_counts_every_epoch(n, budget):
    """The run's time is epochs x steps per epoch, evaluations included (not one epoch whatever the count)."""
    rec = selector().recommend("knowledge_qa", n, time_budget_s=budget)
    est = rec.estimate
    assert rec.train["epochs"] >= 2 and est["total_steps"] == rec.train["epochs"] * est["steps_per_epoch"]
    evals = -(-est["total_steps"] // 50)
    assert est["total_s"] == pytest.approx(est["total_steps"] * est["step_s"] + evals * est["eval_s"])


def test_reason_text_and_train_fields_come_from_the_same_numbers():
    sel = selector()
    free = sel.recommend("knowledge_qa", 3000)
    budget = free.estimate["total_s"] * 0.7  # room for one epoch of the two, not both
    rec = sel.recommend("knowledge_qa", 3000, time_budget_s=budget)
    plan = {r["code"]: r["params"] for r in rec.reasons}
    assert rec.train["epochs"] == 1 and rec.train["max_steps"] is None
    assert plan["budget_fewer_epochs"]["epochs"] == rec.train["epochs"]
    assert plan["budget_fewer_epochs"]["steps"] == rec.estimate["total_steps"]
    assert "fits 1 of the 2 epochs wanted" in english(rec.reasons)


def test_every_reason_code_has_english_and_chinese_text():
    import json
    from pathlib import Path

    from core.strategy.reasons import EN_TABLE

    zh = json.loads((Path(EN_TABLE).parent / "zh.json").read_text(encoding="utf-8"))
    en = json.loads(Path(EN_TABLE).read_text(encoding="utf-8"))
    sel = selector()
    seen = []
    for task, n, budget in [("style", 100, None), ("style", 2000, None), ("knowledge_qa", 100, 60),
                            ("classification", 500, None), ("classification", 5000, 1e9), ("multi_turn", 100, None),
                            ("chat", 3000, None), ("knowledge_qa", 50000, None), ("knowledge_qa", 50000, 600)]:
        rec = sel.recommend(task, n, time_budget_s=budget)
        seen += rec.reasons + rec.runner_up["why"] + rec.runner_up["why_not"]
    for item in seen:
        key = f"strategy.{item['code']}"
        assert key in en and key in zh, key
        assert en[key].format(**item["params"]) and zh[key].format(**item["params"])
