"""Every family x every method: the trainer's loss (``causal_lm_loss``, the fast path or the plain path it falls
back to) and its gradients equal a plain Hugging Face step (``model(**batch, labels=...).loss``) within 1e-5."""
import pytest
import torch

from core.peft import AdapterConfig, FreezeConfig, FullConfig, LoRAConfig, PrefixConfig, apply_peft
from core.training import loss as L
from tests.families.builders import FAMILIES, family_model

METHODS = {
    "lora-rslora": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear", use_rslora=True),
    "dora": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear", use_dora=True),
    "adapter": AdapterConfig(bottleneck=8),
    "prefix": PrefixConfig(num_virtual_tokens=5, projection_dim=16),
    "full": FullConfig(),
    "freeze": FreezeConfig(trainable_layers=1),
}
TOL = 1e-5


def batch(layout: str) -> dict:
    """Rows of 40 tokens (longer than the sliding windows) sharing a 12-token prompt, one row padded."""
    g = torch.Generator().manual_seed(0)
    ids = torch.randint(0, 250, (3, 40), generator=g)
    ids[:, :12] = ids[0, :12]
    labels = ids.clone()
    labels[:, :10] = -100
    if layout == "packed":  # two examples per row, position ids restarting
        pos = torch.cat([torch.arange(18), torch.arange(22)]).repeat(3, 1)
        return {"input_ids": ids, "labels": labels, "attention_mask": None, "position_ids": pos}
    labels[2, 30:] = -100
    mask = torch.ones_like(ids)
    mask[2, 30:] = 0
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def hf_step(model, b: dict) -> tuple[float, dict]:
    """A plain Hugging Face loop's step: the model's own loss (mean over label tokens), then backward."""
    model.zero_grad(set_to_none=True)
    loss = model(**L.model_inputs(b), labels=b["labels"]).loss
    loss.backward()
    return float(loss), {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def trainer_step(model, b: dict) -> tuple[float, dict]:
    """The trainer's step on one micro-batch: the summed loss over label tokens, normalised by their count."""
    model.zero_grad(set_to_none=True)
    total, n = L.causal_lm_loss(model, b)
    (total / n).backward()
    return float(total) / n, {k: p.grad.clone() for k, p in model.named_parameters() if p.requires_grad}


def prepared(family: str, method: str):
    """The family's tiny model with the method applied and every trainable tensor moved off its initial value."""
    model, _ = family_model(family)
    model = apply_peft(model, METHODS[method]).eval()  # eval: no dropout, both passes see one network
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    return model


@pytest.mark.parametrize("layout", ["padded", "packed"])
@pytest.mark.parametrize("method", list(METHODS))
@pytest.mark.parametrize("family", FAMILIES)
def test_trainer_step_equals_a_plain_hf_step(family, method, layout, monkeypatch):
    if layout == "packed" and method == "prefix":
        pytest.skip("prefix tuning trains on padded batches, never packed ones")
    monkeypatch.setattr(L, "UNPAD_MIN_ROW_TOKENS", 1)  # short test rows: take the unpadded path wherever allowed
    monkeypatch.setattr(L, "UNPAD_MIN_PADDING", 1.0)
    model = prepared(family, method)
    b = batch(layout)
    ref_loss, ref_grads = hf_step(model, b)
    from core.training.swiglu import lean_swiglu

    lean_swiglu(model)  # the trainer's default
    loss, grads = trainer_step(model, b)
    assert loss == pytest.approx(ref_loss, abs=TOL, rel=TOL)
    assert grads.keys() == ref_grads.keys() and grads
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=TOL, atol=TOL, msg=name)
