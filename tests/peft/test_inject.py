"""Finding modules by structure and choosing LoRA targets."""
import pytest
import torch.nn as nn

from core.errors import UserError
from core.peft import LoRAConfig, LoRALinear, apply_peft
from core.peft.inject import attention_of, find_backbone, find_blocks, find_targets, final_norm, mlp_of
from tests.peft.helpers import fresh

STRUCTURE = {"tiny-llama": ("model.layers", "self_attn", "mlp", "model.norm"),
             "tiny-gpt2": ("transformer.h", "attn", "mlp", "transformer.ln_f")}


@pytest.mark.parametrize("kind", STRUCTURE)
def test_structure_is_found(kind):
    model, _ = fresh(kind)
    blocks_name, attn, mlp, norm = STRUCTURE[kind]
    name, blocks = find_blocks(model)
    assert name == blocks_name and len(blocks) == 2
    assert attention_of(blocks[0])[0] == attn and mlp_of(blocks[0])[0] == mlp
    assert final_norm(model)[0] == norm
    assert find_backbone(model) is model.get_submodule(blocks_name.split(".")[0])


def test_all_linear_excludes_the_head_and_wraps_conv1d():
    model, _ = fresh("tiny-gpt2")
    apply_peft(model, LoRAConfig(r=2, target_modules="all-linear"))
    wrapped = {n for n, m in model.named_modules() if isinstance(m, LoRALinear)}
    assert len(wrapped) == 2 * 4  # c_attn, attn.c_proj, c_fc, mlp.c_proj per block
    assert not isinstance(model.lm_head, LoRALinear)
    assert all(model.get_submodule(n).fan_in_fan_out for n in wrapped)


def test_regex_selects_full_names_only():
    model, _ = fresh("tiny-llama")
    names = find_targets(model, r"model\.layers\.0\.self_attn\.(q|k)_proj")
    assert names == ["model.layers.0.self_attn.q_proj", "model.layers.0.self_attn.k_proj"]


def test_suffix_names_match_whole_components():
    model, _ = fresh("tiny-llama")
    with pytest.raises(UserError):
        find_targets(model, ("proj",))  # 'proj' is not a whole name: no 'x.proj' module exists


def test_unknown_target_lists_existing_names():
    model, _ = fresh("tiny-llama")
    with pytest.raises(ValueError) as info:
        apply_peft(model, LoRAConfig(target_modules=("q_proj", "query", "self_attn")))
    msg = str(info.value)
    assert "'query' matches no module" in msg and "'self_attn' is a LlamaAttention, not a linear layer" in msg
    for name in ("q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"):
        assert name in msg
    assert "lm_head" not in msg
    assert not any(isinstance(m, LoRALinear) for m in model.modules())  # nothing half-applied
    assert all(p.requires_grad for p in model.parameters())


def test_unknown_target_on_gpt2_suggests_its_names():
    model, _ = fresh("tiny-gpt2")
    with pytest.raises(UserError, match="'o_proj' matches no module.*c_attn, c_fc, c_proj"):
        apply_peft(model, LoRAConfig(target_modules=("o_proj",)))  # q/k/v_proj would select GPT-2's fused c_attn


def test_regex_matching_nothing():
    model, _ = fresh("tiny-llama")
    with pytest.raises(UserError, match="matches no linear layer"):
        apply_peft(model, LoRAConfig(target_modules="q_proj"))  # a regex must match the full name


def test_unsupported_family_is_refused():
    class Tiny(nn.Module):
        def __init__(self):
            super().__init__()
            self.config = type("C", (), {"num_hidden_layers": 3})()
            self.layers = nn.ModuleList([nn.Linear(2, 2)])

    with pytest.raises(UserError, match="Could not find the decoder blocks"):
        apply_peft(Tiny(), LoRAConfig(r=2, target_modules="all-linear"))


def test_adapter_on_blocks_without_an_mlp_is_refused():
    from core.peft import AdapterConfig

    model, _ = fresh("tiny-llama")
    for block in model.model.layers:
        del block.mlp
        block.dense = nn.Sequential()
    with pytest.raises(UserError, match=r"no mlp sub-layer found in LlamaDecoderLayer \(children: self_attn"):
        apply_peft(model, AdapterConfig(placement=("attn", "mlp")))
    apply_peft(model, AdapterConfig(bottleneck=4, placement=("attn",)))  # attention alone is fine
