"""FastDropout: the drop rate, the scaling of kept elements, the gradient, and eval mode."""
import pytest
import torch
from torch import nn

from core.peft.dropout import LEVELS, FastDropout, keep_mask


@pytest.mark.parametrize("p", [0.05, 0.1, 0.5])
def test_drop_rate_matches_p(p):
    torch.manual_seed(0)
    mask = keep_mask(torch.Size([1001, 999]), p)  # an odd element count: the last 32-bit word is half used
    assert mask.dtype == torch.bool and mask.shape == (1001, 999)
    dropped = 1.0 - mask.float().mean().item()
    assert abs(dropped - round(p * LEVELS) / LEVELS) < 0.002
    rows = 1.0 - mask.float().mean(dim=1)  # no position is favoured: every row drops about p
    assert rows.std().item() < 0.05


def test_kept_elements_are_scaled_and_the_gradient_is_the_mask():
    torch.manual_seed(1)
    drop = FastDropout(0.2).train()
    assert isinstance(drop, nn.Dropout) and not list(drop.parameters())
    x = (torch.rand(64, 48) + 0.5).requires_grad_()
    y = drop(x)
    kept = y != 0
    assert 0.7 < kept.float().mean().item() < 0.9
    torch.testing.assert_close(y[kept], x[kept] / 0.8)
    weights = torch.randn_like(x)
    (y * weights).sum().backward()
    torch.testing.assert_close(x.grad, weights * kept / 0.8)


def test_eval_mode_zero_p_and_no_grad():
    x = torch.randn(10, 7)
    assert FastDropout(0.3).eval()(x) is x
    assert FastDropout(0.0).train()(x) is x
    with torch.no_grad():
        y = FastDropout(0.3).train()(x.requires_grad_())
    assert y.grad_fn is None and ((y == 0) | torch.isclose(y, x / 0.7)).all()


def test_same_seed_same_mask():
    torch.manual_seed(5)
    a = keep_mask(torch.Size([300]), 0.1)
    torch.manual_seed(5)
    assert torch.equal(a, keep_mask(torch.Size([300]), 0.1))


def test_lora_and_adapter_use_it():
    from core.peft.adapter import AdapterLayer
    from core.peft.lora import LoRALayer

    assert isinstance(LoRALayer(8, 8, r=2, alpha=4, dropout=0.1).lora_dropout, FastDropout)
    assert isinstance(LoRALayer(8, 8, r=2, alpha=4, dropout=0.0).lora_dropout, nn.Identity)
    assert any(isinstance(m, FastDropout) for m in AdapterLayer(8, 4, dropout=0.1).modules())


def test_exact_mode_draws_nn_dropouts_masks(monkeypatch):
    from core.peft import dropout

    x = torch.randn(40, 30)
    torch.manual_seed(9)
    want = nn.Dropout(0.25).train()(x)
    monkeypatch.setattr(dropout, "EXACT", True)
    torch.manual_seed(9)
    assert torch.equal(FastDropout(0.25).train()(x), want)
