"""Int8 weights for chat ("fast answers"): torch's dynamic quantization of the linear layers of a copy.

Weights are stored as int8 per output channel; activations are quantized on the fly per step. A decode step reads
a quarter of the bytes, which is what single-stream decoding on a CPU waits for (bench/generation.py measures the
speed and how many greedy answers agree with fp32). Answers can differ from fp32 ones, so it is a switch.

Our LoRA layers read their base weight directly (DoRA's norm), which a quantized layer no longer has, so a LoRA is
merged into the copy first; adapters and prefix tuning keep their own modules (their linears are quantized too).
The caller's model is never changed.
"""
from __future__ import annotations

import copy
import warnings

import torch
import torch.nn as nn

from core.peft import LoRALinear, merge_lora


def quantize_for_chat(model: nn.Module) -> nn.Module:
    """An int8 copy of ``model`` for fast CPU answers (nn.Linear layers, per-channel; LoRA merged first)."""
    from torch.ao.quantization import per_channel_dynamic_qconfig, quantize_dynamic

    if next(model.parameters()).device.type != "cpu":
        return model  # dynamic int8 kernels are CPU kernels; a GPU is fast enough in float
    fast = copy.deepcopy(model).eval()
    if any(isinstance(m, LoRALinear) for m in fast.modules()):
        fast = merge_lora(fast)
    with warnings.catch_warnings():  # torch.ao.quantization announces its move to torchao on every call
        warnings.simplefilter("ignore")
        fast = quantize_dynamic(fast, {nn.Linear: per_channel_dynamic_qconfig}, dtype=torch.qint8, inplace=True)
    fast.int8_quantized = True  # read by reports and the chat verb
    return fast
