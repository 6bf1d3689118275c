"""The lean SwiGLU keeps fewer tensors for backward and computes the same outputs and gradients as the original."""
import copy

import pytest
import torch

from core.models import tiny_model
from core.peft import FullConfig, LoRAConfig, apply_peft
from core.training.swiglu import lean_swiglu, swiglu, uses_lean_swiglu


def _saved_floats(fn) -> int:
    """Floats autograd keeps for backward while ``fn`` runs (distinct storages)."""
    seen = {}

    def pack(t):
        seen[t.untyped_storage().data_ptr()] = t.untyped_storage().nbytes() // 4
        return t

    with torch.autograd.graph.saved_tensors_hooks(pack, lambda t: t):
        out = fn()
    return out, sum(seen.values())


def test_swiglu_gradients_equal_autograd_and_keep_two_tensors():
    g = torch.Generator().manual_seed(0)
    gate = torch.randn(5, 7, 33, generator=g, dtype=torch.float64, requires_grad=True)
    up = torch.randn(5, 7, 33, generator=g, dtype=torch.float64, requires_grad=True)
    assert torch.autograd.gradcheck(swiglu, (gate, up))
    ref, ref_saved = _saved_floats(lambda: torch.nn.functional.silu(gate) * up)
    out, saved = _saved_floats(lambda: swiglu(gate, up))
    torch.testing.assert_close(out, ref, rtol=0, atol=0)
    assert ref_saved == 3 * gate.numel() * 2 and saved == 2 * gate.numel() * 2  # float64: 2 floats per number
    with torch.no_grad():
        assert swiglu(gate, up).grad_fn is None


@pytest.mark.parametrize("cfg", [LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules="all-linear"), FullConfig()],
                         ids=["lora-all-linear", "full"])
def test_lean_llama_matches_the_original_and_saves_a_third_of_the_mlp(cfg):
    model, _ = tiny_model("tiny-llama")
    model = apply_peft(model, cfg).eval()
    with torch.no_grad():  # move LoRA B off zero so every parameter gets a gradient
        for p in model.parameters():
            if p.requires_grad:
                p.add_(0.02 * torch.randn(p.shape, generator=torch.Generator().manual_seed(p.numel())))
    lean = copy.deepcopy(model)
    layers = model.config.num_hidden_layers
    assert lean_swiglu(lean) == layers and lean_swiglu(lean) == 0, "every MLP once, and a second call is a no-op"
    assert uses_lean_swiglu(lean) and not uses_lean_swiglu(model)
    ids = torch.randint(0, 250, (2, 17), generator=torch.Generator().manual_seed(3))

    def loss_of(m):
        def run():
            return m(input_ids=ids, labels=ids).loss
        loss, saved = _saved_floats(run)
        loss.backward()
        return loss, saved, {k: p.grad for k, p in m.named_parameters() if p.requires_grad}

    ref_loss, ref_saved, ref_grads = loss_of(model)
    loss, saved, grads = loss_of(lean)
    assert float(loss) == pytest.approx(float(ref_loss), abs=1e-6)
    for name, grad in ref_grads.items():
        torch.testing.assert_close(grads[name], grad, rtol=1e-5, atol=1e-6, msg=name)
    # One (tokens x intermediate) tensor fewer per block: silu(gate) is recomputed in backward.
    assert ref_saved - saved == layers * ids.numel() * model.config.intermediate_size
    with torch.no_grad():  # evaluation and generation run the original expression
        torch.testing.assert_close(lean(input_ids=ids).logits, model(input_ids=ids).logits, rtol=0, atol=0)


def test_gpt2_has_no_swiglu_to_swap():
    model, _ = tiny_model("tiny-gpt2")
    assert lean_swiglu(model) == 0 and not uses_lean_swiglu(model)
