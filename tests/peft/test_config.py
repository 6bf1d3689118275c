"""Configs: defaults, round trips and one error naming every problem."""
import pytest

from core.errors import UserError
from core.peft import AdapterConfig, FreezeConfig, FullConfig, LoRAConfig, PrefixConfig, config_from_dict


@pytest.mark.parametrize("cfg", [LoRAConfig(), LoRAConfig(target_modules="all-linear", use_dora=True),
                                 LoRAConfig(target_modules=r".*\.q_proj"), AdapterConfig(), PrefixConfig(),
                                 PrefixConfig(projection_dim=0), FullConfig(), FreezeConfig()])
def test_round_trip_through_dict(cfg):
    again = config_from_dict(cfg.method, cfg.to_dict())
    assert again == cfg and again.method == cfg.method


def test_defaults_match_the_contract():
    assert LoRAConfig().to_dict() == {"r": 8, "alpha": 16, "dropout": 0.05, "target_modules": ["q_proj", "v_proj"],
                                      "use_rslora": False, "use_dora": False, "method": "lora"}
    assert (AdapterConfig().bottleneck, AdapterConfig().placement) == (64, ("attn", "mlp"))
    assert (PrefixConfig().num_virtual_tokens, PrefixConfig().projection_dim) == (20, 512)
    assert FreezeConfig().trainable_layers == 2


def test_run_config_lists_become_tuples():
    cfg = config_from_dict("lora", {"r": 4, "target_modules": ["q_proj", "k_proj"]})
    assert cfg.target_modules == ("q_proj", "k_proj")


def test_bad_lora_config_names_every_problem_at_once():
    with pytest.raises(ValueError) as info:
        LoRAConfig(r=0, alpha=-1, dropout=1.5, target_modules=[], use_dora="yes")
    msg = str(info.value)
    assert isinstance(info.value, UserError)
    for fragment in ("r=0", "alpha=-1", "dropout=1.5", "target_modules=()", "use_dora='yes'"):
        assert fragment in msg


def test_bad_regex_is_reported():
    with pytest.raises(UserError, match="not a valid regular expression"):
        LoRAConfig(target_modules="q_proj(")


def test_bad_adapter_prefix_freeze_configs():
    with pytest.raises(UserError) as info:
        AdapterConfig(bottleneck=0, nonlinearity="swish", placement=["attn", "ffn"], dropout=-0.1)
    for fragment in ("bottleneck=0", "nonlinearity='swish'", "placement=", "dropout=-0.1"):
        assert fragment in str(info.value)
    with pytest.raises(UserError) as info:
        PrefixConfig(num_virtual_tokens=0, projection_dim=-3)
    assert "num_virtual_tokens=0" in str(info.value) and "projection_dim=-3" in str(info.value)
    with pytest.raises(UserError, match="trainable_layers=-1"):
        FreezeConfig(trainable_layers=-1)


def test_config_from_dict_merges_unknown_keys_with_bad_values():
    with pytest.raises(UserError) as info:
        config_from_dict("lora", {"r": -2, "rank": 8, "lora_alpha": 16})
    msg = str(info.value)
    assert "r=-2" in msg and "rank" in msg and "lora_alpha" in msg and "allowed: r, alpha" in msg


def test_unknown_method():
    with pytest.raises(UserError, match="lora, adapter, prefix, full, freeze"):
        config_from_dict("qlora", {})
