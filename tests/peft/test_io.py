"""save_adapter / load_adapter, refusals, and merge_lora."""
import json

import pytest
import torch

from core.errors import UserError
from core.peft import (AdapterConfig, LoRALinear, apply_peft, get_peft_config, load_adapter,
                       merge_lora, peft_state_dict, save_adapter, trainable_parameters)
from core.peft.io import ADAPTER_CONFIG, ADAPTER_WEIGHTS
from tests.peft.helpers import KINDS, cases, fresh, logits, method_configs, right_padded_batch, train_steps


def trained(kind, variant, steps=2, lr=0.1):
    model, tok = fresh(kind)
    apply_peft(model, method_configs(kind)[variant])
    batch = right_padded_batch(tok)
    train_steps(model, batch, steps=steps, lr=lr)
    return model, tok, batch


@pytest.mark.parametrize("kind,variant", cases())
def test_save_fresh_base_load_reproduces_logits(kind, variant, tmp_path):
    model, _, batch = trained(kind, variant)
    save_adapter(model, tmp_path / "adapter")
    meta = json.loads((tmp_path / "adapter" / ADAPTER_CONFIG).read_text())
    assert meta["method"] == model._assistant_factory_peft.method
    assert meta["trainable_parameters"] == trainable_parameters(model)[0]
    base, _ = fresh(kind)
    loaded = load_adapter(base, tmp_path / "adapter")
    assert loaded is base and get_peft_config(base) == get_peft_config(model)
    assert torch.equal(logits(base, batch), logits(model, batch))
    assert trainable_parameters(base) == trainable_parameters(model)


@pytest.mark.parametrize("kind", KINDS)
def test_adapter_file_holds_only_method_tensors(kind, tmp_path):
    from safetensors.torch import load_file

    model, _, _ = trained(kind, "lora", steps=1)
    save_adapter(model, tmp_path)
    saved = load_file(str(tmp_path / ADAPTER_WEIGHTS))
    assert set(saved) == set(peft_state_dict(model)) and all(".lora_" in k for k in saved)


def test_folded_prefix_round_trip(tmp_path):
    model, _, batch = trained("tiny-llama", "prefix")
    before = logits(model, batch)
    model.prefix_tuning.fold()
    assert torch.allclose(logits(model, batch), before, atol=1e-6)
    save_adapter(model, tmp_path)
    base, _ = fresh("tiny-llama")
    load_adapter(base, tmp_path)
    assert base.prefix_tuning.folded and torch.equal(logits(base, batch), logits(model, batch))


def test_wrong_base_model_is_refused(tmp_path):
    model, _, _ = trained("tiny-llama", "lora", steps=1)
    save_adapter(model, tmp_path)
    other, _ = fresh("tiny-gpt2")
    with pytest.raises(UserError) as info:
        load_adapter(other, tmp_path)
    msg = str(info.value)
    assert "trained on tiny-llama (llama" in msg and "model given is tiny-gpt2 (gpt2" in msg
    assert get_peft_config(other) is None  # nothing applied


def test_renamed_base_needs_strict_false(tmp_path):
    model, _, batch = trained("tiny-llama", "lora", steps=1)
    save_adapter(model, tmp_path)
    other, _ = fresh("tiny-llama")
    other.name_or_path = "somewhere/else"
    with pytest.raises(UserError, match="strict=False"):
        load_adapter(other, tmp_path)
    load_adapter(other, tmp_path, strict=False)
    assert torch.equal(logits(other, batch), logits(model, batch))


def test_wrong_method_is_refused(tmp_path):
    model, _, _ = trained("tiny-gpt2", "lora", steps=1)
    save_adapter(model, tmp_path)
    other, _ = fresh("tiny-gpt2")
    apply_peft(other, AdapterConfig(bottleneck=4))
    with pytest.raises(UserError, match="trained with method 'lora' but the model uses 'adapter'"):
        load_adapter(other, tmp_path)
    with pytest.raises(UserError, match="method 'lora' but the model uses 'prefix'"):
        load_adapter(fresh("tiny-gpt2")[0], tmp_path, method="prefix")


def test_not_an_adapter_folder(tmp_path):
    with pytest.raises(UserError, match="not an adapter folder"):
        load_adapter(fresh("tiny-llama")[0], tmp_path)


# ---------------------------------------------------------------- merge
@pytest.mark.parametrize("kind,variant", cases(("lora", "rslora", "dora")))
def test_merge_equals_unmerged_and_twice_is_refused(kind, variant):
    # lr 0.01, not 0.1: at 0.1 two Adam steps blow the update up so far that float32 summation order alone
    # moves logits by ~1e-5; 0.01 still changes the logits by far more than the tolerance (checked below).
    model, _, batch = trained(kind, variant, lr=0.01)
    before = logits(model, batch)
    assert (before - logits(fresh(kind)[0], batch)).abs().max().item() > 1e-3, "the LoRA must matter"
    merge_lora(model)
    assert not any(isinstance(m, LoRALinear) for m in model.modules())
    assert not any("lora_" in n for n, _ in model.named_parameters())
    assert (logits(model, batch) - before).abs().max().item() < 1e-5
    weights = {n: p.clone() for n, p in model.named_parameters()}
    with pytest.raises(UserError, match="already merged"):
        merge_lora(model)
    assert all(torch.equal(p, weights[n]) for n, p in model.named_parameters())


@pytest.mark.parametrize("kind,variant", cases(("lora", "dora")))
def test_layer_merge_unmerge_round_trip(kind, variant):
    model, _, batch = trained(kind, variant)
    layer = next(m for m in model.modules() if isinstance(m, LoRALinear))
    original = layer.base_layer.weight.clone()
    before = logits(model, batch)
    layer.merge()
    layer.merge()  # a second merge of the same layer is a no-op
    assert (logits(model, batch) - before).abs().max().item() < 1e-5
    layer.unmerge()
    assert torch.allclose(layer.base_layer.weight, original, atol=1e-6)


def test_merge_refuses_non_finite_weights_without_touching_the_model():
    model, _, _ = trained("tiny-llama", "lora", steps=1)
    layer = next(m for m in model.modules() if isinstance(m, LoRALinear))
    with torch.no_grad():
        layer.lora_B.weight[0, 0] = float("nan")
    base_weights = {n: p.clone() for n, p in model.named_parameters() if "lora_" not in n}
    with pytest.raises(UserError, match="NaN or Inf"):
        merge_lora(model)
    assert any(isinstance(m, LoRALinear) for m in model.modules())
    assert all(torch.equal(p, base_weights[n]) for n, p in model.named_parameters() if n in base_weights)


def test_merge_needs_lora():
    model, _ = fresh("tiny-llama")
    apply_peft(model, AdapterConfig(bottleneck=4))
    with pytest.raises(UserError, match="only applies to LoRA"):
        merge_lora(model)
    with pytest.raises(UserError, match="no PEFT method applied"):
        merge_lora(fresh("tiny-llama")[0])
