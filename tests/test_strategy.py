"""Strategy: exact parameter counts, the memory model against saved tensors, the selector's rules, fit_check, CLI."""
from __future__ import annotations

import json

import pytest
import torch

from core.errors import UserError
from core.strategy import (GiB, Machine, MachineSpeed, ResourceEstimator, StrategySelector, fit_check,
                           normalize_task)

SPEED = MachineSpeed(device="cpu", threads=2, matmul_gflops=20.0, bandwidth_gbs=8.0, framework_mb=450.0,
                     measured_at=0.0)
DEFAULT = "smollm2-135m-instruct"


def machine(gib: float, device: str = "cpu") -> Machine:
    """A simulated machine with ``gib`` GiB of free memory."""
    return Machine(device=device, cpu_cores=2, threads=2, ram_total=int(gib * GiB), ram_available=int(gib * GiB))


def estimator(model: str = DEFAULT, gib: float = 64) -> ResourceEstimator:
    return ResourceEstimator(model, machine=machine(gib), speed=SPEED)


def selector(gib: float = 64) -> StrategySelector:
    return StrategySelector(estimator=estimator(DEFAULT, gib))


# ---------------------------------------------------------------- parameters: exactly the built model's
METHOD_PARAMS = {
    "tiny-llama": [("lora", {}), ("lora", {"r": 4, "target_modules": "all-linear"}), ("adapter", {}),
                   ("adapter", {"bottleneck": 8, "placement": ["mlp"]}), ("prefix", {}),
                   ("prefix", {"num_virtual_tokens": 5, "projection_dim": 0}), ("full", {}),
                   ("freeze", {"trainable_layers": 1})],
    "tiny-gpt2": [("lora", {"target_modules": ["c_attn"]}), ("lora", {"r": 2, "target_modules": "all-linear"}),
                  ("adapter", {}), ("prefix", {}), ("full", {}), ("freeze", {"trainable_layers": 1})],
}


@pytest.mark.parametrize("kind,method,params", [(k, m, p) for k, cases in METHOD_PARAMS.items() for m, p in cases])
def test_parameter_counts_equal_the_built_model(kind, method, params):
    from core.models import tiny_model
    from core.peft import apply_peft, config_from_dict, trainable_parameters

    count = estimator(kind).parameters(method, params)
    model, _ = tiny_model(kind)
    apply_peft(model, config_from_dict(method, params))
    assert (count.trainable, count.total) == trainable_parameters(model)
    assert count.trainable == sum(p.numel() for p in model.parameters() if p.requires_grad)
    assert count.added == count.total - sum(p.numel() for p in tiny_model(kind)[0].parameters())


def test_tied_embeddings_counted_once_for_full_fine_tuning():
    from core.models import tiny_model

    model, _ = tiny_model("tiny-llama")
    assert model.get_input_embeddings().weight is model.get_output_embeddings().weight
    count = estimator("tiny-llama").parameters("full")
    assert count.trainable == count.total == sum(p.numel() for p in model.parameters())


def test_default_model_counts_without_loading_weights():
    est = estimator(DEFAULT)
    lora = est.parameters("lora", {"r": 8, "target_modules": ["q_proj", "v_proj"]})
    # 30 layers x (q: 8*(576+576) + v: 8*(576+192))
    assert lora.trainable == 30 * (8 * (576 + 576) + 8 * (576 + 192))
    assert est.parameters("full").trainable == lora.base


# ---------------------------------------------------------------- activations: formula vs saved tensors
def saved_activation_floats(model, batch) -> int:
    """Floats autograd keeps for backward during one loss forward (parameters and shared storage once)."""
    from core.training.loss import causal_lm_loss

    params = {p.untyped_storage().data_ptr() for p in model.parameters()}
    seen: dict[int, int] = {}

    def pack(t):
        base = t._base if t._base is not None else t
        key = base.untyped_storage().data_ptr()
        if key not in params and t.is_floating_point():
            seen[key] = base.untyped_storage().nbytes() // base.element_size()
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        causal_lm_loss(model, batch)
    return sum(seen.values())


@pytest.mark.parametrize("method,params", [("lora", {}), ("lora", {"target_modules": "all-linear"}),
                                           ("adapter", {}), ("prefix", {}), ("full", {}),
                                           ("freeze", {"trainable_layers": 1})])
def test_activation_formula_matches_saved_tensors(method, params):
    """Per-layer activations of the formula within 20% of what autograd really saves (tiny-llama, 2 vs 4 layers)."""
    from core.models import tiny_model
    from core.peft import apply_peft, config_from_dict
    from core.training.swiglu import lean_swiglu

    B, T = 2, 96
    ids = torch.randint(3, 250, (B, T))
    batch = {"input_ids": ids, "labels": ids}
    tokens = B * T
    if method == "prefix":  # padded rows, as chat data gives: the trainer runs them unpadded (core.training.varlen)
        batch["attention_mask"] = torch.ones_like(ids)
        batch["attention_mask"][1, 60:] = 0
        batch["labels"] = ids.masked_fill(batch["attention_mask"] == 0, -100)
        tokens = int(batch["attention_mask"].sum())
    else:
        batch["position_ids"] = torch.arange(T).repeat(B, 1)
    measured = {}
    for layers in (2, 4):
        model, _ = tiny_model("tiny-llama", num_hidden_layers=layers)
        apply_peft(model, config_from_dict(method, params))
        lean_swiglu(model)  # as the trainer does
        model.train()
        measured[layers] = saved_activation_floats(model, batch)
    per_layer_real = (measured[4] - measured[2]) / 2 / tokens
    est = estimator("tiny-llama")
    floats = est.activation_floats(method, params, T, masked=method == "prefix")
    per_layer_est = sum(v for k, v in floats.items() if k != "embeddings and final norm") / est.arch.layers
    if method == "freeze":  # only the top block keeps activations: 2 vs 4 layers differ by frozen blocks only
        assert per_layer_real == 0
        assert per_layer_est * est.arch.layers == pytest.approx(sum(floats.values()) - floats[
            "embeddings and final norm"])
    else:
        assert per_layer_est == pytest.approx(per_layer_real, rel=0.20)


def test_memory_grows_with_batch_sequence_and_method():
    est = estimator(DEFAULT)
    small = est.memory("lora", batch_size=1, seq_len=128)
    assert est.memory("lora", batch_size=8, seq_len=128).total > small.total
    assert est.memory("lora", batch_size=1, seq_len=512).total > small.total
    full = est.memory("full", batch_size=1, seq_len=128)
    assert full.breakdown["optimizer states"] == 2 * full.breakdown["gradients"] == 2 * full.breakdown["weights"]
    assert full.total > small.total
    assert set(small.breakdown) >= {"framework", "weights", "gradients", "optimizer states", "activations"}


def test_step_time_uses_the_measured_speed():
    fast = ResourceEstimator(DEFAULT, machine=machine(64), speed=MachineSpeed(
        "cpu", 2, SPEED.matmul_gflops * 4, SPEED.bandwidth_gbs * 4, 450.0, 0.0))
    slow = estimator(DEFAULT)
    shape = [(4, 256, 512)]
    t_slow, t_fast = slow.step_time("lora", batches=shape), fast.step_time("lora", batches=shape)
    assert t_fast.flops == t_slow.flops
    assert t_fast.breakdown["matmuls"] == pytest.approx(t_slow.breakdown["matmuls"] / 4)
    # full fine-tuning also computes weight gradients: more FLOPs than LoRA for the same tokens
    assert slow.step_time("full", batches=shape).flops > 1.3 * t_slow.flops


def test_machine_detect_reads_this_machine():
    m = Machine.detect("cpu")
    assert m.device == "cpu" and m.cpu_cores >= 1 and m.ram_total >= m.ram_available > 0
    assert 0 < m.memory_budget < m.ram_total


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
    assert rec.runner_up["method"] != method and rec.runner_up["why_not"]
    assert rec.reasons and all(isinstance(r, str) and r for r in rec.reasons)
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
    assert rec.runner_up["method"] == "full" and "GiB" in rec.runner_up["why_not"]


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
    assert any("budget" in r for r in tight.reasons)


def test_time_budget_too_small_for_full_keeps_peft_with_reason():
    sel = selector(64)
    rec = sel.recommend("knowledge_qa", 50000, time_budget_s=600)
    assert rec.method == "lora"
    assert rec.runner_up["method"] == "full" and "budget" in rec.runner_up["why_not"]


def test_quality_report_sets_sequence_length_and_notes():
    quality = {"rows": 800, "num_labels": 0, "score": 55,
               "checks": {"lengths": {"p95": 180, "mean": 90}},
               "deductions": [{"check": "duplicates", "cause": "120 exact duplicates", "points": 8,
                               "fix": "Prepare with --dedupe."}]}
    rec = selector().recommend("style", quality=quality)
    assert rec.train["max_seq_len"] == 256
    assert any("--dedupe" in n for n in rec.notes)
    assert any("quality" in n for n in rec.notes)


def test_unknown_task_is_a_user_error():
    assert normalize_task("Multi-turn") == "multi_turn"
    with pytest.raises(UserError, match="style"):
        normalize_task("poetry")


def test_recommendation_is_a_valid_run_config():
    from core.training.config import TrainingConfig

    rec = selector().recommend("classification", 5000)
    cfg = TrainingConfig.from_dict(rec.to_config("some-dataset"))
    assert cfg.method == "adapter" and cfg.train.batch_size == rec.train["batch_size"]


# ---------------------------------------------------------------- fit_check
def test_fit_check_suggests_a_change_that_fits():
    est = estimator(DEFAULT, gib=4)
    cfg = {"data": "x", "method": "lora", "train": {"batch_size": 32, "max_seq_len": 1024}}
    report = fit_check(cfg, estimator=est)
    assert not report.fits and report.problems and report.suggestion
    fixed = json.loads(json.dumps(cfg))
    for key, value in report.suggestion.items():
        if "." in key:
            sec, k = key.split(".")
            fixed.setdefault(sec, {})[k] = value
        else:
            fixed[key] = value
    assert fit_check(fixed, estimator=est).fits
    # the smallest change: only the batch shrinks (accumulation keeps 32 examples per update)
    assert set(report.suggestion) == {"train.batch_size", "train.grad_accum"}
    assert report.suggestion["train.batch_size"] * report.suggestion["train.grad_accum"] == 32


def test_fit_check_switches_method_when_batch_and_length_are_not_enough():
    est = estimator(DEFAULT, gib=2.3)
    cfg = {"data": "x", "method": "full", "train": {"batch_size": 8, "max_seq_len": 512}}
    assert not est.memory("full", batch_size=1, seq_len=128).fits
    report = fit_check(cfg, estimator=est)
    assert report.suggestion and report.suggestion["method"] in ("lora", "prefix")


def test_fit_check_passes_a_config_that_fits():
    report = fit_check({"data": "x", "method": "lora", "train": {"batch_size": 2, "max_seq_len": 256}},
                       estimator=estimator(DEFAULT, gib=64))
    assert report.fits and not report.problems and report.suggestion is None


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
    import core.strategy as strategy
    from core.__main__ import main

    monkeypatch.setattr(strategy, "machine_speed", lambda machine=None, refresh=False: SPEED)
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
    import core.strategy as strategy
    from core.training.config import TrainingConfig

    monkeypatch.setattr(strategy, "machine_speed", lambda machine=None, refresh=False: SPEED)
    data = tmp_path / "intents.csv"
    data.write_text("text,label\n" + "".join(f"please help with thing {i},intent_{i % 3}\n" for i in range(60)))
    rec = strategy.recommend_for_dataset(str(data), model="tiny-llama")
    assert rec.task == "classification"  # labelled data without a stated purpose
    assert rec.method == "lora"  # fewer than 1000 labelled examples
    cfg = TrainingConfig.from_dict(rec.config)
    assert cfg.data == str(data) and cfg.model == "tiny-llama"
    assert rec.to_dict()["runner_up"]["why"]
    assert strategy.recommend_for_dataset(str(data), purpose="style", model="tiny-llama").method == "prefix"


def test_run_time_has_one_example_per_row_like_the_trainer():
    sel = selector()
    choice = strategy_choice("lora")
    _, _, steps_short_rows = sel._run_time(choice, 800, 8, 64, 40.0, 1)
    _, _, steps_long_rows = sel._run_time(choice, 800, 8, 512, 40.0, 1)
    # Packing is off by default on CPU (core.training.config), so a longer max_seq_len packs nothing.
    assert steps_short_rows == steps_long_rows == 100
    assert sel.recommend("knowledge_qa", 800).train["packing"] is False


def _intents_csv(tmp_path, rows: int = 200):
    data = tmp_path / "faq.csv"
    data.write_text("question,answer\n" + "".join(
        f"how do I reset thing number {i}?,open the settings page and press reset {i} times\n" for i in range(rows)))
    return data


def test_time_budget_on_a_dataset_caps_the_run_on_its_real_batches(tmp_path, monkeypatch):
    import core.strategy as strategy

    monkeypatch.setattr(strategy, "machine_speed", lambda machine=None, refresh=False: SPEED)
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
    assert any("time budget" in r for r in tight.reasons)


def test_time_budget_never_cuts_below_the_minimum_steps(tmp_path, monkeypatch):
    import core.strategy as strategy

    monkeypatch.setattr(strategy, "machine_speed", lambda machine=None, refresh=False: SPEED)
    rec = strategy.recommend_for_dataset(str(_intents_csv(tmp_path)), model="tiny-llama", time_budget_s=1e-3)
    assert rec.train["epochs"] == 1 and rec.train["max_steps"] == strategy.MIN_BUDGET_STEPS


def strategy_choice(method: str):
    from core.strategy import ADAPTER, LORA_QV, PREFIX, Choice

    return Choice(method, {"lora": LORA_QV, "adapter": ADAPTER, "prefix": PREFIX}.get(method, {}), [])


def test_sequence_length_counts_the_run_system_prompt(tmp_path, monkeypatch):
    """The quality report measures rows without the run's system prompt; the recommendation must not cut answers."""
    import core.strategy as strategy
    from core.data import load_split
    from core.data.loader import SmartDataLoader
    from core.models import load_tokenizer

    monkeypatch.setattr(strategy, "machine_speed", lambda machine=None, refresh=False: SPEED)
    data = _intents_csv(tmp_path, rows=80)
    prompt = "You are the very patient support assistant of a company that sells many things. " * 3
    plain = strategy.recommend_for_dataset(str(data), purpose="support", model="tiny-llama")
    long = strategy.recommend_for_dataset(str(data), purpose="support", model="tiny-llama", system_prompt=prompt)
    loader = SmartDataLoader(load_tokenizer("tiny-llama"), system_prompt=prompt, max_seq_len=4096)
    lengths = sorted(len(ex["input_ids"]) for ex in loader.encode_all(load_split(str(data), "train"))[0])
    assert long.train["max_seq_len"] > plain.train["max_seq_len"]
    assert long.train["max_seq_len"] >= lengths[int(0.95 * len(lengths))], "95% of the examples fit whole"
