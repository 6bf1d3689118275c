"""The lean RMSNorm and SwiGLU compute the same outputs and gradients as the Hugging Face modules they replace."""
import copy

import pytest
import torch

from core.models import tiny_model
from core.peft import FullConfig, LoRAConfig, apply_peft
from core.training.fused import fuse_for_training
from core.training.loss import causal_lm_loss


def _batch():
    g = torch.Generator().manual_seed(1)
    ids = torch.randint(0, 250, (3, 24), generator=g)
    labels = ids.clone()
    labels[:, :8] = -100
    mask = torch.ones_like(ids)
    mask[1, 18:] = 0
    labels[1, 18:] = -100
    return {"input_ids": ids, "labels": labels, "attention_mask": mask}


def _grads(model, batch):
    model.zero_grad(set_to_none=True)
    total, _ = causal_lm_loss(model, batch)
    total.backward()
    return float(total.detach()), {k: p.grad.clone() for k, p in model.named_parameters() if p.grad is not None}


@pytest.mark.parametrize("cfg", [LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear"), FullConfig()],
                         ids=["lora-all-linear", "full"])
def test_fused_llama_matches_the_original(cfg):
    model, _ = tiny_model("tiny-llama")
    model = apply_peft(model, cfg).eval()
    with torch.no_grad():  # move LoRA B off zero so every parameter gets a gradient
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    fused = copy.deepcopy(model)
    layers = model.config.num_hidden_layers
    assert fuse_for_training(fused) == 2 * layers + 1 + layers  # two norms per block and the final one; MLPs
    assert fuse_for_training(fused) == 0, "fusing twice changes nothing"
    batch = _batch()
    loss, grads = _grads(model, batch)
    fused_loss, fused_grads = _grads(fused, batch)
    assert fused_loss == pytest.approx(loss, rel=1e-6)
    assert grads.keys() == fused_grads.keys() and grads
    if isinstance(cfg, FullConfig):
        assert any(k.endswith("norm.weight") for k in grads), "norm weights train in full fine-tuning"
    for name, grad in grads.items():
        torch.testing.assert_close(fused_grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    with torch.no_grad():  # and generation-style inference is unchanged
        x = batch["input_ids"][:1]
        torch.testing.assert_close(fused(x).logits, model(x).logits, rtol=1e-5, atol=1e-5)


def test_gpt2_has_nothing_to_fuse():
    model, _ = tiny_model("tiny-gpt2")
    assert fuse_for_training(model) == 0
