"""Every method on both tiny families: identity at init, isolation of training, parameter counts."""
import copy

import pytest
import torch

from core.errors import UserError
from core.peft import (LoRAConfig, LoRALinear, apply_peft, get_peft_config, method_parameter_names, peft_state_dict,
                       trainable_parameters)
from core.peft.inject import find_blocks, final_norm, linear_features, linear_modules
from core.peft.prefix import kv_shape
from tests.peft.helpers import KINDS, cases, fresh, logits, method_configs, right_padded_batch, train_steps

IDENTITY_AT_INIT = ("lora", "rslora", "dora", "adapter", "adapter-mlp", "full", "freeze")


@pytest.mark.parametrize("kind,variant", cases(IDENTITY_AT_INIT))
def test_logits_unchanged_at_init(kind, variant):
    model, tok = fresh(kind)
    batch = right_padded_batch(tok)
    before = logits(model, batch)
    apply_peft(model, method_configs(kind)[variant])
    assert not any(m.training for m in model.modules())  # new modules follow eval mode: dropout is off
    assert torch.equal(logits(model, batch), before)


@pytest.mark.parametrize("kind,variant", cases())
def test_training_touches_only_method_tensors(kind, variant):
    model, tok = fresh(kind)
    cfg = method_configs(kind)[variant]
    apply_peft(model, cfg)
    method = set(method_parameter_names(model))
    trainable = {n for n, p in model.named_parameters() if p.requires_grad}
    assert trainable == method == set(peft_state_dict(model)) and method
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    train_steps(model, right_padded_batch(tok), steps=2, lr=0.1)
    for name, param in model.named_parameters():
        if name in method:
            assert not torch.equal(param, before[name]), f"{name} did not train"
        else:
            assert torch.equal(param, before[name]), f"base weight {name} changed"
            assert param.grad is None


def _lora_count(model, cfg) -> int:
    total = 0
    for name, module in model.named_modules():
        if isinstance(module, LoRALinear):
            fan_in, fan_out = linear_features(module.base_layer)
            total += cfg.r * (fan_in + fan_out) + (fan_out if cfg.use_dora else 0)
    return total


def _closed_form(model, cfg) -> int:
    """The formulas of the module docstrings, from the model config alone."""
    c = model.config
    d = getattr(c, "hidden_size", None) or c.n_embd
    layers = getattr(c, "num_hidden_layers", None) or c.n_layer
    if cfg.method == "adapter":
        b = cfg.bottleneck
        return layers * len(cfg.placement) * (2 * d * b + b + d)
    if cfg.method == "prefix":
        kv_heads, head_dim = kv_shape(c)
        dkv, p, m = kv_heads * head_dim, cfg.num_virtual_tokens, cfg.projection_dim
        if m == 0:
            return p * 2 * layers * dkv
        return p * dkv + (dkv * m + m) + (m * 2 * layers * dkv + 2 * layers * dkv)
    raise AssertionError(cfg)


@pytest.mark.parametrize("kind", KINDS)
def test_lora_count_closed_form(kind):
    model, _ = fresh(kind)
    cfg = method_configs(kind)["dora"]
    targets = [n for n, _ in linear_modules(model) if n.rsplit(".", 1)[-1] in cfg.target_modules]
    expected = sum(cfg.r * sum(linear_features(model.get_submodule(n))) +
                   linear_features(model.get_submodule(n))[1] for n in targets)
    apply_peft(model, cfg)
    assert trainable_parameters(model)[0] == expected == _lora_count(model, cfg)


@pytest.mark.parametrize("kind,variant", cases(("adapter", "adapter-mlp", "prefix", "prefix-direct")))
def test_adapter_and_prefix_counts_closed_form(kind, variant):
    model, _ = fresh(kind)
    base_total = sum(p.numel() for p in model.parameters())
    cfg = method_configs(kind)[variant]
    apply_peft(model, cfg)
    trainable, total = trainable_parameters(model)
    assert trainable == _closed_form(model, cfg)
    assert total == base_total + trainable


@pytest.mark.parametrize("kind", KINDS)
def test_freeze_and_full_counts(kind):
    model, _ = fresh(kind)
    total = sum(p.numel() for p in model.parameters())
    _, blocks = find_blocks(model)
    expected = sum(p.numel() for p in blocks[-1].parameters()) + \
        sum(p.numel() for p in final_norm(model)[1].parameters())
    apply_peft(model, method_configs(kind)["freeze"])
    assert trainable_parameters(model) == (expected, total)
    model, _ = fresh(kind)
    apply_peft(model, method_configs(kind)["full"])
    assert trainable_parameters(model) == (total, total)


def test_gqa_prefix_shapes():
    model, _ = fresh("tiny-llama")  # 4 query heads, 2 key/value heads of 16
    apply_peft(model, method_configs("tiny-llama")["prefix"])
    keys, values = model.prefix_tuning.key_values(batch_size=3, dtype=torch.float32)[0]
    assert keys.shape == values.shape == (3, 2, 5, 16)


def test_apply_twice_is_refused():
    model, _ = fresh("tiny-llama")
    apply_peft(model, LoRAConfig(r=2))
    with pytest.raises(UserError, match="already has lora applied"):
        apply_peft(model, LoRAConfig(r=2))
    assert get_peft_config(model) == LoRAConfig(r=2)


def test_freeze_more_layers_than_exist_is_refused():
    model, _ = fresh("tiny-gpt2")
    with pytest.raises(UserError, match="only 2 blocks"):
        apply_peft(model, method_configs("tiny-gpt2")["freeze"].__class__(trainable_layers=5))


@pytest.mark.parametrize("kind", KINDS)
def test_deepcopy_keeps_adapters_working(kind):
    model, tok = fresh(kind)
    apply_peft(model, method_configs(kind)["adapter"])
    batch = right_padded_batch(tok)
    train_steps(model, batch, steps=2)
    clone = copy.deepcopy(model)
    expected = logits(clone, batch)
    with torch.no_grad():
        for name, p in model.named_parameters():  # the copy must not read the original's adapters
            if ".adapters." in name:
                p.add_(1.0)
    assert torch.equal(logits(clone, batch), expected)
    assert not torch.equal(logits(model, batch), expected)
