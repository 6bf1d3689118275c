"""The estimate verb and recommendations for real datasets (real batches, timed now)."""
from __future__ import annotations

import json

import pytest
import torch

from core.strategy import MachineSpeed, ResourceEstimator
from tests.strategy.helpers import SPEED, english, estimator, fix_speed, selector


# ---------------------------------------------------------------- the estimate verb
@pytest.fixture
def run_config(tmp_path):
    data = tmp_path / "chats.jsonl"
    rows = [{"messages": [{"role": "user", "content": f"Question number {i}?"},
                          {"role": "assistant", "content": f"Answer {i}: " + "words " * (i % 7)}]}
            for i in range(40)]
    data.write_text("\n".join(json.dumps(r) for r in rows) + "\n")
    cfg = tmp_path / "run.json"
    cfg.write_text(json.dumps({"model": "tiny-llama", "data": str(data), "method": "lora",
                               "lora": {"target_modules": ["q_proj", "v_proj"]},
                               "train": {"epochs": 2, "batch_size": 4, "max_seq_len": 128}}))
    return cfg


def test_estimate_command_prints_breakdown_and_json(run_config, monkeypatch, capsys):
    from core.__main__ import main

    fix_speed(monkeypatch)
    assert main(["estimate", "--config", str(run_config)]) == 0
    out = capsys.readouterr().out
    for word in ("trainable", "weights", "optimizer states", "activations", "Per epoch", "Whole run"):
        assert word in out
    assert main(["estimate", "--config", str(run_config), "--json"]) == 0
    doc = json.loads(capsys.readouterr().out)
    assert doc["params"]["trainable"] == ResourceEstimator("tiny-llama", speed=SPEED).parameters(
        "lora", {"target_modules": ["q_proj", "v_proj"]}).trainable
    assert doc["steps_per_epoch"] >= 1 and doc["total_steps"] == 2 * doc["steps_per_epoch"]
    assert doc["data"]["examples"] == 36  # the 90% train part of a plain file (core.data's seeded split)
    # fewer steps than eval_every: the trainer evaluates once, at the end, on the 4 held-out conversations
    assert doc["data"]["evals"] == 1 and doc["data"]["eval_s"] > 0
    assert doc["total_s"] == pytest.approx(2 * doc["epoch_s"] + doc["data"]["eval_s"])


def test_estimate_command_bad_config_exits_2(tmp_path, capsys):
    from core.__main__ import main

    bad = tmp_path / "bad.yaml"
    bad.write_text("data: x\nmethod: lorra\n")
    assert main(["estimate", "--config", str(bad)]) == 2
    assert "method" in capsys.readouterr().err


def test_recommend_for_dataset_file_gives_a_run_config(tmp_path, monkeypatch):
    from core import strategy
    from core.training.config import TrainingConfig

    fix_speed(monkeypatch)
    data = tmp_path / "intents.csv"
    data.write_text("text,label\n" + "".join(f"please help with thing {i},intent_{i % 3}\n" for i in range(60)))
    rec = strategy.recommend_for_dataset(str(data), model="tiny-llama")
    assert rec.task == "classification"  # labelled data without a stated purpose
    assert rec.method == "lora"  # fewer than 1000 labelled examples
    cfg = TrainingConfig.from_dict(rec.config)
    assert cfg.data == str(data) and cfg.model == "tiny-llama"
    assert rec.to_dict()["runner_up"]["why"]
    # labelled data is classification whatever the purpose (a support assistant routing intents learns labels)
    assert strategy.recommend_for_dataset(str(data), purpose="support", model="tiny-llama").task == "classification"
    chats = tmp_path / "style.csv"
    chats.write_text("question,answer\n" + "".join(f"say thing {i},Thing {i} said with flair!\n" for i in range(60)))
    assert strategy.recommend_for_dataset(str(chats), purpose="style", model="tiny-llama").method == "prefix"


def test_epoch_time_has_one_example_per_row_like_the_trainer():
    sel = selector()
    _, steps_short_rows = sel.epoch_time("lora", {}, 800, 8, 64, 40.0)
    _, steps_long_rows = sel.epoch_time("lora", {}, 800, 8, 512, 40.0)
    # Packing is off by default, so a longer max_seq_len packs nothing.
    assert steps_short_rows == steps_long_rows == 100
    assert sel.recommend("knowledge_qa", 800).train["packing"] is False


def _intents_csv(tmp_path, rows: int = 200):
    data = tmp_path / "faq.csv"
    data.write_text("question,answer\n" + "".join(
        f"how do I reset thing number {i}?,open the settings page and press reset {i} times\n" for i in range(rows)))
    return data


def test_time_budget_on_a_dataset_caps_the_run_on_its_real_batches(tmp_path, monkeypatch):
    from core import strategy

    fix_speed(monkeypatch)
    data = _intents_csv(tmp_path)
    free = strategy.recommend_for_dataset(str(data), model="tiny-llama", time_budget_s=1e9)
    assert free.train["max_steps"] is None
    full_s = free.estimate["total_s"]
    assert full_s == pytest.approx(strategy.ResourceEstimator("tiny-llama", speed=SPEED).estimate(free.config).total_s,
                                   rel=1e-6)
    budget = full_s / 3
    tight = strategy.recommend_for_dataset(str(data), model="tiny-llama", time_budget_s=budget)
    assert tight.config["train"] == tight.train
    capped = tight.train["max_steps"] or tight.train["epochs"] * free.estimate["steps_per_epoch"]
    assert capped < free.estimate["total_steps"]
    assert tight.estimate["total_s"] <= budget
    # The estimator agrees with the capped config, and the reason names the budget.
    again = strategy.ResourceEstimator("tiny-llama", speed=SPEED).estimate(tight.config)
    assert again.total_s == pytest.approx(tight.estimate["total_s"], rel=0.02)
    assert "time budget" in english(tight.reasons)


def test_time_budget_never_cuts_below_the_minimum_steps(tmp_path, monkeypatch):
    from core import strategy

    fix_speed(monkeypatch)
    rec = strategy.recommend_for_dataset(str(_intents_csv(tmp_path)), model="tiny-llama", time_budget_s=1e-3)
    assert rec.train["epochs"] == 1 and rec.train["max_steps"] == strategy.MIN_BUDGET_STEPS


def test_sequence_length_counts_the_run_system_prompt(tmp_path, monkeypatch):
    """The quality report measures rows without the run's system prompt; the recommendation must not cut answers."""
    from core import strategy
    from core.data import load_split
    from core.data.loader import SmartDataLoader
    from core.models import load_tokenizer

    fix_speed(monkeypatch)
    data = _intents_csv(tmp_path, rows=80)
    prompt = "You are the very patient support assistant of a company that sells many things. " * 3
    plain = strategy.recommend_for_dataset(str(data), purpose="support", model="tiny-llama")
    long = strategy.recommend_for_dataset(str(data), purpose="support", model="tiny-llama", system_prompt=prompt)
    loader = SmartDataLoader(load_tokenizer("tiny-llama"), system_prompt=prompt, max_seq_len=4096)
    lengths = sorted(len(ex["input_ids"]) for ex in loader.encode_all(load_split(str(data), "train"))[0])
    assert long.train["max_seq_len"] > plain.train["max_seq_len"]
    assert long.train["max_seq_len"] >= lengths[int(0.95 * len(lengths))], "95% of the examples fit whole"


def test_recommendation_is_timed_now_and_carries_the_expected_step_time(tmp_path, monkeypatch):
    """The run is re-timed on the data's own batches at the speed probed now, and the config says what it expects."""
    import core.strategy.machine as machine_module
    from core.strategy import recommend_for_dataset
    from core.training.config import TrainingConfig

    fix_speed(monkeypatch)
    data = str(_intents_csv(tmp_path))
    fast = recommend_for_dataset(data, model="tiny-llama")
    slow_speed = MachineSpeed("cpu", 2, SPEED.matmul_gflops / 4, SPEED.bandwidth_gbs / 4, SPEED.framework_mb, 1.0)
    monkeypatch.setattr(machine_module, "probe_speed", lambda machine=None: slow_speed)
    slow = recommend_for_dataset(data, model="tiny-llama")
    assert slow.train["expected_step_s"] > 2.5 * fast.train["expected_step_s"]  # dispatch overhead does not scale
    assert slow.estimate["timing"] == "probe" and slow.estimate["step_s"] == pytest.approx(
        slow.train["expected_step_s"], rel=1e-3)
    timed = next(r for r in slow.reasons if r["code"] == "timed_now")
    assert timed["params"]["gflops"] == slow_speed.matmul_gflops and "just now" in english([timed])
    assert TrainingConfig.from_dict(slow.config).train.expected_step_s == slow.train["expected_step_s"]


def test_a_budget_below_one_epoch_says_so_with_the_budget_for_one(tmp_path, monkeypatch):
    from core.strategy import recommend_for_dataset

    fix_speed(monkeypatch)
    data = str(_intents_csv(tmp_path))
    free = recommend_for_dataset(data, model="tiny-llama")
    one_epoch_s = free.estimate["epoch_run_s"]
    rec = recommend_for_dataset(data, model="tiny-llama", time_budget_s=one_epoch_s / 2)
    assert rec.train["max_steps"] < rec.estimate["steps_per_epoch"] and rec.estimate["full_epochs"] is False
    [partial] = [r for r in rec.reasons if r["code"] == "budget_partial_epoch"]
    assert partial["params"]["epoch_min"] * 60 >= one_epoch_s
    assert not any(r["code"] in ("epochs_small_data", "budget_fits") for r in rec.reasons)  # no "N epochs" claim


def test_micro_batches_know_whether_they_carry_a_mask():
    from core.strategy.shapes import micro_batches

    ids = torch.arange(24).reshape(2, 12)
    labels = ids.clone()
    same = {"input_ids": ids, "labels": labels, "attention_mask": torch.ones_like(ids)}
    assert [g[3] for g in micro_batches(same, None)] == [False]  # no padding: plain causal attention
    padded_mask = torch.ones_like(ids)
    padded_mask[1, 8:] = 0
    padded = {"input_ids": ids, "labels": labels.masked_fill(padded_mask == 0, -100), "attention_mask": padded_mask}
    assert [g[3] for g in micro_batches(padded, None)] == [True]  # short rows: padded with a mask
    packed = {"input_ids": ids, "labels": labels, "attention_mask": None}
    assert [g[3] for g in micro_batches(packed, None, packing=True)] == [True]  # block-diagonal mask


def test_unmasked_batches_cost_less_attention_than_masked_ones():
    est = estimator("tiny-llama")
    plain = est.step_time("lora", {}, batches=[(4, 256, 512, False)])
    masked = est.step_time("lora", {}, batches=[(4, 256, 512, True)])
    assert plain.flops < masked.flops
    assert est.step_time("lora", {}, batches=[(4, 256, 512)], masked=False).flops == plain.flops
