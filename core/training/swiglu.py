"""A memory-lean SwiGLU MLP for training Llama-family models (SmolLM2, Llama, Qwen2, Mistral).

``down_proj(silu(gate) * up)`` under plain autograd keeps three (tokens x intermediate) tensors per block for the
backward pass: ``gate`` (for silu's derivative), ``silu(gate)`` and ``up`` (for the product's). ``silu(gate)`` is
one element-wise pass away from ``gate``, so :class:`_SwiGLU` keeps only ``gate`` and ``up`` and recomputes it:
on SmolLM2 that is a fifth of a training step's activation memory (1,536 of ~7,900 floats per token and layer
with LoRA on q/v) for one extra pass over ``gate`` in backward. The gradient of ``gate`` still comes from
PyTorch's fused ``silu_backward`` kernel, so backward makes four element-wise passes where autograd makes three.

Only the MLP is swapped: Hugging Face's RMSNorm already keeps just its input and one scale per token when its
weight is frozen. ``lean_swiglu(model)`` swaps the ``forward`` of matching module instances; under ``no_grad``
(evaluation, generation) they run the original expression. LoRA or adapters on the projections keep working.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up, saving gate and up only."""

    @staticmethod
    def forward(ctx, gate, up):  # noqa: D102 - see the class docstring
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        gate, up = ctx.saved_tensors
        grad_up = grad * F.silu(gate) if ctx.needs_input_grad[1] else None
        grad_gate = None
        if ctx.needs_input_grad[0]:
            grad_gate = torch.ops.aten.silu_backward(grad * up, gate)  # one fused pass: d silu(g)/dg
        return grad_gate, grad_up


def swiglu(gate: torch.Tensor, up: torch.Tensor) -> torch.Tensor:
    """silu(gate) * up; with gradients on, the lean function (saves gate and up, recomputes silu)."""
    if torch.is_grad_enabled() and (gate.requires_grad or up.requires_grad):
        return _SwiGLU.apply(gate, up)
    return F.silu(gate) * up


def _mlp_forward(self, x):
    return self.down_proj(swiglu(self.gate_proj(x), self.up_proj(x)))


def is_swiglu_mlp(module: nn.Module) -> bool:
    """An MLP computing ``down_proj(silu(gate_proj(x)) * up_proj(x))`` (Hugging Face's Llama-style MLPs)."""
    act = type(getattr(module, "act_fn", None)).__name__
    return (type(module).__name__.endswith("MLP") and act in ("SiLU", "SiLUActivation")
            and all(isinstance(getattr(module, n, None), nn.Module) for n in ("gate_proj", "up_proj", "down_proj")))


def lean_swiglu(model: nn.Module) -> int:
    """Swap in the lean SwiGLU wherever the model has a Llama-style MLP; returns how many were swapped (0 twice)."""
    count = 0
    for module in model.modules():
        if is_swiglu_mlp(module) and not getattr(module, "_af_lean", False):
            module.forward = types.MethodType(_mlp_forward, module)
            module._af_lean = True
            count += 1
    return count


def uses_lean_swiglu(model: nn.Module) -> bool:
    """Whether ``lean_swiglu`` has been applied to any MLP of ``model``."""
    return any(getattr(m, "_af_lean", False) for m in model.modules())
