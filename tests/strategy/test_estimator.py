"""The estimator: exact parameter counts, the memory model against saved tensors, step time, this machine."""
from __future__ import annotations

import pytest
import torch

from core.strategy import Machine, MachineSpeed, ResourceEstimator
from tests.strategy.helpers import (
    DEFAULT,
    SPEED,
    estimator,
    machine,
)

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




def test_probe_scales_the_idle_benchmark_by_the_cpu_share_a_run_gets(monkeypatch):
    import psutil

    from core.strategy import machine as machine_module

    idle = machine_module.MachineSpeed(device="cpu", threads=2, matmul_gflops=80.0, bandwidth_gbs=30.0,
                                       framework_mb=300.0, measured_at=0.0)
    monkeypatch.setattr(machine_module, "machine_speed", lambda machine=None: idle)
    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.setattr(psutil.Process, "cpu_percent", lambda self, interval=None: 0.0)
    for busy_pct, share in ((0.0, 1.0), (50.0, 1 / 1.5), (100.0, 0.5)):  # another program on 0, 1, 2 cores
        monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None, b=busy_pct: b)
        now = machine_module.probe_speed(machine_module.Machine.detect())
        assert now.matmul_gflops == pytest.approx(80.0 * share, abs=0.01)
        assert now.bandwidth_gbs == pytest.approx(30.0 * share, abs=0.01)
    assert now.framework_mb == idle.framework_mb


def test_cpu_share_does_not_count_this_process_as_another_program(monkeypatch):
    import psutil

    from core.strategy import machine as machine_module

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 50.0)  # one core busy ...
    monkeypatch.setattr(psutil.Process, "cpu_percent", lambda self, interval=None: 100.0)  # ... by us
    assert machine_module.cpu_share(0.01) == 1.0


def test_cpu_share_ignores_a_short_burst_but_not_lasting_load(monkeypatch):
    import psutil

    from core.strategy import machine as machine_module

    monkeypatch.setattr(psutil, "cpu_count", lambda logical=True: 2)
    monkeypatch.setattr(psutil.Process, "cpu_percent", lambda self, interval=None: 0.0)
    burst = iter([None, 100.0, None, 0.0, None, 0.0, None, 0.0])  # (reset, reading) per window: one busy window
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: next(burst))
    assert machine_module.cpu_share(0.01, windows=4) == 1.0
    monkeypatch.setattr(psutil, "cpu_percent", lambda interval=None: 100.0)  # busy throughout
    assert machine_module.cpu_share(0.01, windows=4) == 0.5
