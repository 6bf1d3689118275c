"""Parity with the reference, HF peft: same LoRA weights, same logits; our peft export loads in peft."""
import json

import pytest
import torch

peft = pytest.importorskip("peft")

from core.peft import LoRAConfig, LoRALinear, PrefixConfig, apply_peft, export_peft, set_peft_state_dict  # noqa: E402
from tests.peft.helpers import TARGETS, fresh, logits, right_padded_batch, train_steps  # noqa: E402

LORA_VARIANTS = {
    "lora": dict(r=4, alpha=8, dropout=0.1),
    "rslora": dict(r=4, alpha=8, dropout=0.0, use_rslora=True),
    "dora": dict(r=4, alpha=8, dropout=0.1, use_dora=True),
    "dora-all-linear": dict(r=2, alpha=3, dropout=0.0, use_dora=True, target_modules="all-linear"),
}
CASES = [(k, v) for k in TARGETS for v in LORA_VARIANTS]


def ours(kind, variant, **overrides):
    params = {"target_modules": TARGETS[kind], **LORA_VARIANTS[variant], **overrides}
    model, tok = fresh(kind)
    apply_peft(model, LoRAConfig(**params))
    batch = right_padded_batch(tok)
    train_steps(model, batch, steps=2)  # non-trivial A, B and magnitude
    return model, batch, LoRAConfig(**params)


def reference(kind, cfg):
    base, _ = fresh(kind)
    targets = cfg.target_modules if isinstance(cfg.target_modules, str) else list(cfg.target_modules)
    pcfg = peft.LoraConfig(r=cfg.r, lora_alpha=cfg.alpha, lora_dropout=cfg.dropout, target_modules=targets,
                           use_rslora=cfg.use_rslora, use_dora=cfg.use_dora, task_type="CAUSAL_LM")
    return peft.get_peft_model(base, pcfg).eval()


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind,variant", CASES)
def test_same_weights_same_logits_as_peft(kind, variant):
    model, batch, cfg = ours(kind, variant)
    ref = reference(kind, cfg)
    ref_params = dict(ref.named_parameters())
    copied = 0
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoRALinear):
                key = f"base_model.model.{name}"
                ref_params[f"{key}.lora_A.default.weight"].copy_(module.lora_A.weight)
                ref_params[f"{key}.lora_B.default.weight"].copy_(module.lora_B.weight)
                if cfg.use_dora:
                    ref_params[f"{key}.lora_magnitude_vector.default.weight"].copy_(module.lora_magnitude_vector)
                copied += 1
    assert copied == sum("lora_A" in n for n in ref_params)  # peft wrapped exactly the same layers
    diff = (logits(model, batch) - logits(ref, batch)).abs().max().item()
    assert diff < 1e-5


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind,variant", CASES)
def test_export_loads_in_peft_with_our_logits(kind, variant, tmp_path):
    model, batch, cfg = ours(kind, variant)
    export_peft(model, tmp_path)
    written = json.loads((tmp_path / "adapter_config.json").read_text())
    assert written["peft_type"] == "LORA" and written["fan_in_fan_out"] == (kind == "tiny-gpt2")
    base, _ = fresh(kind)
    loaded = peft.PeftModel.from_pretrained(base, str(tmp_path)).eval()
    assert (logits(loaded, batch) - logits(model, batch)).abs().max().item() < 1e-5


@pytest.mark.filterwarnings("ignore::UserWarning")
def test_export_of_a_regex_selection_wraps_only_those_layers(tmp_path):
    model, batch, _ = ours("tiny-llama", "lora", target_modules=r"model\.layers\.0\.self_attn\.(q|o)_proj")
    export_peft(model, tmp_path)
    loaded = peft.PeftModel.from_pretrained(fresh("tiny-llama")[0], str(tmp_path)).eval()
    assert sum("lora_A" in n for n, _ in loaded.named_parameters()) == 2
    assert (logits(loaded, batch) - logits(model, batch)).abs().max().item() < 1e-5


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind", list(TARGETS))
@pytest.mark.parametrize("projection_dim", [16, 0])
def test_prefix_same_weights_same_logits_as_peft(kind, projection_dim):
    model, tok = fresh(kind)
    apply_peft(model, PrefixConfig(num_virtual_tokens=4, projection_dim=projection_dim))
    base, _ = fresh(kind)
    pcfg = peft.PrefixTuningConfig(task_type="CAUSAL_LM", num_virtual_tokens=4, prefix_projection=projection_dim > 0,
                                   encoder_hidden_size=projection_dim or None)
    ref = peft.get_peft_model(base, pcfg).eval()
    encoder = ref.prompt_encoder["default"]
    state = {f"prefix_tuning.{k}": v for k, v in encoder.state_dict().items()}
    set_peft_state_dict(model, state)
    batch = right_padded_batch(tok)
    assert (logits(model, batch) - logits(ref, batch)).abs().max().item() < 1e-5
    with torch.no_grad():  # with labels too (the training path)
        assert abs(model(**batch).loss.item() - ref(**batch).loss.item()) < 1e-5


@pytest.mark.filterwarnings("ignore::UserWarning")
@pytest.mark.parametrize("kind,variant", [(k, v) for k in TARGETS for v in ("lora", "dora")])
def test_training_mode_loss_and_gradients_match_peft(kind, variant, monkeypatch):
    """Dropout active (same seed, same call order, masks drawn as nn.Dropout draws them): same loss and same LoRA
    gradients as peft."""
    from core.peft import dropout

    monkeypatch.setattr(dropout, "EXACT", True)  # FastDropout's own masks are a different random stream
    model, batch, cfg = ours(kind, variant)
    ref = reference(kind, cfg)
    ref_params = dict(ref.named_parameters())
    pairs = []
    with torch.no_grad():
        for name, module in model.named_modules():
            if isinstance(module, LoRALinear):
                key = f"base_model.model.{name}"
                for ours_name, ref_name in (("lora_A.weight", "lora_A.default.weight"),
                                            ("lora_B.weight", "lora_B.default.weight"),
                                            ("lora_magnitude_vector", "lora_magnitude_vector.default.weight")):
                    if ours_name == "lora_magnitude_vector" and not cfg.use_dora:
                        continue
                    mine = module.get_parameter(ours_name)
                    ref_params[f"{key}.{ref_name}"].copy_(mine)
                    pairs.append((mine, ref_params[f"{key}.{ref_name}"]))
    losses = []
    for net in (model, ref):
        net.zero_grad(set_to_none=True)
        net.train()
        torch.manual_seed(123)
        loss = net(**batch).loss
        loss.backward()
        losses.append(loss.item())
    assert abs(losses[0] - losses[1]) < 1e-5
    for mine, theirs in pairs:
        assert (mine.grad - theirs.grad).abs().max().item() < 1e-5
