"""SmartOptimizer: parameter groups, per-method rates, schedules, clipping, safetensors-friendly state."""
import math

import pytest
import torch

from core.training.optim import RECOMMENDED_LR, SmartOptimizer, lr_at


def _model():
    torch.manual_seed(0)
    return torch.nn.Sequential(torch.nn.Linear(4, 8), torch.nn.LayerNorm(8), torch.nn.Linear(8, 2))


def test_no_weight_decay_on_vectors():
    opt = SmartOptimizer(_model().named_parameters(), weight_decay=0.1)
    groups = opt.optimizer.param_groups
    decayed = [p for g in groups if g["weight_decay"] > 0 for p in g["params"]]
    plain = [p for g in groups if g["weight_decay"] == 0 for p in g["params"]]
    assert decayed and all(p.dim() == 2 for p in decayed)
    assert plain and all(p.dim() == 1 for p in plain)
    assert len(decayed) + len(plain) == 6


def test_frozen_parameters_are_left_out():
    model = _model()
    model[0].weight.requires_grad_(False)
    opt = SmartOptimizer(model.named_parameters())
    assert "0.weight" not in opt.param_names and len(opt.params) == 5


@pytest.mark.parametrize("method", ["lora", "adapter", "prefix", "full", "freeze"])
def test_recommended_lr_when_null(method):
    opt = SmartOptimizer(_model().named_parameters(), method=method, lr=None)
    assert opt.base_lr == RECOMMENDED_LR[method]
    assert SmartOptimizer(_model().named_parameters(), method=method, lr=3e-4).base_lr == 3e-4


def test_schedules():
    kw = dict(base_lr=1.0, total_steps=10, warmup_steps=2, min_lr_ratio=0.1)
    assert [lr_at(s, scheduler="cosine", **kw) for s in (0, 1)] == [0.5, 1.0]  # linear warmup
    assert lr_at(2, scheduler="cosine", **kw) == pytest.approx(1.0)
    assert lr_at(10, scheduler="cosine", **kw) == pytest.approx(0.1)  # decays to the floor
    assert lr_at(6, scheduler="cosine", **kw) == pytest.approx(0.1 + 0.9 * 0.5 * (1 + math.cos(math.pi * 0.5)))
    assert lr_at(6, scheduler="linear", **kw) == pytest.approx(0.1 + 0.9 * 0.5)
    assert all(lr_at(s, scheduler="constant", **kw) == 1.0 for s in range(2, 10))
    cos = [lr_at(s, scheduler="cosine", **kw) for s in range(2, 11)]
    assert cos == sorted(cos, reverse=True)


def test_step_sets_scheduled_lr_and_clips():
    model = _model()
    opt = SmartOptimizer(model.named_parameters(), lr=0.1, total_steps=4, warmup_steps=2, max_grad_norm=0.5)
    (model(torch.randn(3, 4)) * 100).sum().backward()
    norm = opt.grad_norm()
    assert norm > 0.5
    clipped = torch.linalg.vector_norm(torch.stack([p.grad.norm() for p in opt.params]))
    assert float(clipped) == pytest.approx(0.5, rel=1e-4)
    assert opt.step(0) == pytest.approx(0.05) and opt.optimizer.param_groups[0]["lr"] == pytest.approx(0.05)


def test_state_round_trip_continues_identically():
    def train(opt, model, steps, start=0):
        for s in range(start, start + steps):
            torch.manual_seed(100 + s)
            model(torch.randn(5, 4)).pow(2).sum().backward()
            opt.grad_norm()
            opt.step(s)
            opt.zero_grad()

    a = _model()
    opt_a = SmartOptimizer(a.named_parameters(), lr=0.01, weight_decay=0.1, total_steps=6)
    train(opt_a, a, 3)
    tensors, meta = opt_a.state_tensors()
    assert all(torch.is_tensor(t) for t in tensors.values())
    import json
    meta = json.loads(json.dumps(meta))  # must be JSON-able
    b = _model()
    b.load_state_dict(a.state_dict())
    opt_b = SmartOptimizer(b.named_parameters(), lr=0.01, weight_decay=0.1, total_steps=6)
    opt_b.load_state_tensors(tensors, meta)
    train(opt_a, a, 3, start=3)
    train(opt_b, b, 3, start=3)
    for pa, pb in zip(a.parameters(), b.parameters()):
        assert torch.equal(pa, pb)


def test_mismatched_state_is_refused():
    opt = SmartOptimizer(_model().named_parameters())
    tensors, meta = opt.state_tensors()
    other = torch.nn.Linear(3, 3)
    with pytest.raises(ValueError, match="different trainable parameters"):
        SmartOptimizer(other.named_parameters()).load_state_tensors(tensors, meta)
