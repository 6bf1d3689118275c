"""Our own parameter-efficient fine-tuning engine: LoRA/rsLoRA/DoRA, Adapter, Prefix, full, freeze.

    from core.peft import LoRAConfig, apply_peft, trainable_parameters, save_adapter, load_adapter, merge_lora
    model = apply_peft(base_model, LoRAConfig(r=8, alpha=16, target_modules=("q_proj", "v_proj")))

HF ``peft`` is never imported here; tests compare against it.
"""
from core.peft.adapter import AdapterLayer, AdapterTransformerLayer
from core.peft.apply import (apply_peft, get_peft_config, method_parameter_names, peft_state_dict,
                             set_peft_state_dict, trainable_parameters)
from core.peft.config import (AdapterConfig, FreezeConfig, FullConfig, LoRAConfig, PrefixConfig,
                              config_from_dict)
from core.peft.disable import adapters_disabled, supports_disabling
from core.peft.io import base_fingerprint, export_peft, load_adapter, merge_lora, read_adapter_config, save_adapter
from core.peft.lora import LoRALayer, LoRALinear
from core.peft.prefix import PrefixTuning

__all__ = [
    "LoRAConfig", "AdapterConfig", "PrefixConfig", "FullConfig", "FreezeConfig", "config_from_dict",
    "apply_peft", "trainable_parameters", "peft_state_dict", "set_peft_state_dict", "get_peft_config",
    "method_parameter_names", "save_adapter", "load_adapter", "read_adapter_config", "merge_lora", "export_peft",
    "base_fingerprint", "LoRALayer", "LoRALinear", "AdapterLayer", "AdapterTransformerLayer", "PrefixTuning",
    "adapters_disabled", "supports_disabling",
]
