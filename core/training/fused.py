"""Memory-lean RMSNorm and SwiGLU for training Llama-family models (SmolLM2, Llama, Qwen, Mistral …).

Autograd keeps every intermediate of the Hugging Face implementations for the backward pass: RMSNorm's float32
copy, its normalised output and the weighted output; the MLP's ``silu(gate)`` beside ``gate`` and ``up``. For a
135M model that is about a quarter of the activation memory of a training step. These two autograd functions
keep only what their backward needs (RMSNorm: its input and one reciprocal norm per token; SwiGLU: ``gate`` and
``up``) and recompute the rest, which is a few element-wise operations. Same numbers as the originals (tests:
``tests/training/test_fused.py``).

``fuse_for_training(model)`` swaps the ``forward`` of the matching module instances; nothing else changes, so
LoRA or adapters on ``gate_proj``/``up_proj``/``down_proj`` and every hook keep working.
"""
from __future__ import annotations

import types

import torch
import torch.nn.functional as F
from torch import nn


class _RMSNorm(torch.autograd.Function):
    """y = w * x / rms(x); saves x and 1/rms(x) only."""

    @staticmethod
    def forward(ctx, x, weight, eps: float):  # noqa: D102
        xf = x.float()
        rstd = torch.rsqrt(xf.pow(2).mean(-1, keepdim=True) + eps)  # (..., 1)
        ctx.save_for_backward(x, weight, rstd)
        return weight * (xf * rstd).to(x.dtype)

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        x, weight, rstd = ctx.saved_tensors
        xhat = x.float() * rstd
        gw = grad.float() * weight.float()
        # d/dx of x * rstd(x): rstd * (g - xhat * mean(g * xhat))
        grad_x = rstd * (gw - xhat * (gw * xhat).mean(-1, keepdim=True))
        grad_w = None
        if ctx.needs_input_grad[1]:
            grad_w = (grad.float() * xhat).reshape(-1, x.shape[-1]).sum(0).to(weight.dtype)
        return grad_x.to(x.dtype), grad_w, None


class _SwiGLU(torch.autograd.Function):
    """silu(gate) * up; saves gate and up only."""

    @staticmethod
    def forward(ctx, gate, up):  # noqa: D102
        ctx.save_for_backward(gate, up)
        return F.silu(gate) * up

    @staticmethod
    def backward(ctx, grad):  # noqa: D102
        gate, up = ctx.saved_tensors
        sig = torch.sigmoid(gate)
        silu = gate * sig
        grad_up = grad * silu if ctx.needs_input_grad[1] else None
        grad_gate = grad * up * (sig + silu * (1 - sig)) if ctx.needs_input_grad[0] else None
        return grad_gate, grad_up


def _norm_forward(self, hidden_states):
    return _RMSNorm.apply(hidden_states, self.weight, self.variance_epsilon)


def _mlp_forward(self, x):
    return self.down_proj(_SwiGLU.apply(self.gate_proj(x), self.up_proj(x)))


def _is_rms_norm(module: nn.Module) -> bool:
    """Hugging Face's T5/Llama-style RMSNorm: a weight, an epsilon, and no bias or mean subtraction."""
    return (type(module).__name__.endswith("RMSNorm") and isinstance(getattr(module, "weight", None), nn.Parameter)
            and isinstance(getattr(module, "variance_epsilon", None), float)
            and not getattr(module, "with_scale", False) and getattr(module, "offset", 0) in (0, None))


def _is_swiglu_mlp(module: nn.Module) -> bool:
    """An MLP computing down_proj(silu(gate_proj(x)) * up_proj(x))."""
    act = type(getattr(module, "act_fn", None)).__name__
    return (all(hasattr(module, n) for n in ("gate_proj", "up_proj", "down_proj"))
            and act in ("SiLU", "SiLUActivation") and type(module).__name__.endswith("MLP"))


def fuse_for_training(model: nn.Module) -> int:
    """Swap in the lean RMSNorm and SwiGLU where the model has them (Llama family); returns how many modules."""
    count = 0
    for module in model.modules():
        if getattr(module, "_af_fused", False):
            continue
        if _is_rms_norm(module):
            module.forward = types.MethodType(_norm_forward, module)
        elif _is_swiglu_mlp(module):
            module.forward = types.MethodType(_mlp_forward, module)
        else:
            continue
        module._af_fused = True
        count += 1
    return count
