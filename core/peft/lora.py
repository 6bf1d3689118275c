"""LoRA (Hu et al. 2021), rsLoRA (Kalajdzievski 2023) and DoRA (Liu et al. 2024) on linear layers.

``LoRALinear`` wraps a frozen ``nn.Linear`` or GPT-2 ``Conv1D`` (kept as ``base_layer``) and adds
``scaling * B(A(dropout(x)))`` with ``A: in -> r`` (Kaiming-uniform, a=sqrt(5), as peft) and ``B: r -> out`` (zeros),
so the model is unchanged at initialisation. ``scaling = alpha / r``, or ``alpha / sqrt(r)`` with rsLoRA.

DoRA decomposes the adapted weight into a magnitude and a direction:
``W' = m * (W + s*BA) / ||W + s*BA||`` where the norm is taken per output feature (the row norms of the
``(out, in)`` weight, as peft computes them) and is treated as a constant in backprop (paper §4.3).
``m`` starts at ``||W||`` so, again, the output is unchanged at initialisation.

Trainable parameters per wrapped layer with ``in`` inputs and ``out`` outputs:
``r * (in + out)`` for LoRA, plus ``out`` for DoRA's magnitude vector. For SmolLM2-135M (hidden 576, 3 kv heads
of 64) with r=8 on q_proj (576->576) and v_proj (576->192) over 30 layers: ``30 * 8 * (1152 + 768) = 460,800``.
"""
from __future__ import annotations

import math

import torch
import torch.nn as nn
import torch.nn.functional as F

from core.peft.dropout import FastDropout
from core.peft.inject import is_conv1d, linear_features


class LoRALayer(nn.Module):
    """The low-rank pair ``B A`` with its scaling and dropout, independent of the wrapped layer's type."""

    def __init__(self, in_features: int, out_features: int, r: int, alpha: float, dropout: float = 0.0,
                 use_rslora: bool = False):
        super().__init__()
        self.r, self.alpha = r, alpha
        self.scaling = alpha / math.sqrt(r) if use_rslora else alpha / r
        self.lora_dropout = FastDropout(dropout) if dropout > 0 else nn.Identity()
        self.lora_A = nn.Linear(in_features, r, bias=False)
        self.lora_B = nn.Linear(r, out_features, bias=False)
        self.reset_lora_parameters()

    def reset_lora_parameters(self) -> None:
        """A like nn.Linear's default (Kaiming-uniform, a=sqrt(5)), B zero: the update BA starts at 0."""
        nn.init.kaiming_uniform_(self.lora_A.weight, a=math.sqrt(5))
        nn.init.zeros_(self.lora_B.weight)

    def delta_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """``scaling * B @ A`` in ``(out, in)`` layout (computed in ``dtype`` when given)."""
        b, a = self.lora_B.weight, self.lora_A.weight
        if dtype is not None:
            b, a = b.to(dtype), a.to(dtype)
        return (b @ a) * self.scaling


class LoRALinear(LoRALayer):
    """A linear-like layer plus a LoRA (or DoRA) update; ``merge()`` folds it into the base weight."""

    def __init__(self, base_layer: nn.Module, r: int, alpha: float, dropout: float = 0.0,
                 use_rslora: bool = False, use_dora: bool = False):
        in_features, out_features = linear_features(base_layer)
        super().__init__(in_features, out_features, r, alpha, dropout, use_rslora)
        self.base_layer = base_layer
        self.fan_in_fan_out = is_conv1d(base_layer)  # Conv1D keeps its weight as (in, out)
        self.use_dora = use_dora
        self.merged = False
        dev = base_layer.weight.device
        self.to(device=dev, dtype=base_layer.weight.dtype)
        if use_dora:
            self.lora_magnitude_vector = nn.Parameter(self._weight_norm(torch.zeros_like(self.base_weight())))

    # ------------------------------------------------------------------ weights
    def base_weight(self) -> torch.Tensor:
        """The base weight in ``(out, in)`` layout (a view for Conv1D)."""
        weight = self.base_layer.weight
        return weight.T if self.fan_in_fan_out else weight

    def _weight_norm(self, delta: torch.Tensor) -> torch.Tensor:
        """Per-output-feature norm of ``W + delta`` (DoRA), detached: a constant for backprop."""
        return torch.linalg.norm(self.base_weight().to(delta.dtype) + delta, dim=1).detach()

    def merged_weight(self, dtype: torch.dtype | None = None) -> torch.Tensor:
        """The weight this layer computes with, in ``(out, in)`` layout (computed in ``dtype`` when given)."""
        delta = self.delta_weight(dtype)
        base = self.base_weight().to(delta.dtype)
        if not self.use_dora:
            return base + delta
        factor = self.lora_magnitude_vector.to(delta.dtype) / self._weight_norm(delta)
        return factor.view(-1, 1) * (base + delta)

    # ------------------------------------------------------------------ forward
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        """``base(x) + scaling * B(A(dropout(x)))`` (DoRA: rescaled per output feature)."""
        result = self.base_layer(x)
        if self.merged:
            return result
        if self.use_dora:
            return result + self._dora_delta(x, result)
        return result + self.lora_B(self.lora_A(self.lora_dropout(x))) * self.scaling

    def _dora_delta(self, x: torch.Tensor, result: torch.Tensor) -> torch.Tensor:
        # Same algebra as peft's DoraLinearLayer: (m/||W+sBA|| - 1) * W x + m/||W+sBA|| * s * B A x
        norm = self._weight_norm(self.delta_weight().detach())
        scale = (self.lora_magnitude_vector / norm).view(1, -1)
        if isinstance(self.lora_dropout, nn.Identity) or not self.training:
            base = result - self.base_layer.bias if self.base_layer.bias is not None else result
        else:
            x = self.lora_dropout(x)
            base = F.linear(x, self.base_weight())
        return (scale - 1) * base + scale * self.lora_B(self.lora_A(x)) * self.scaling

    # ------------------------------------------------------------------ merge
    @torch.no_grad()
    def merge(self) -> None:
        """Fold the update into the base weight (checked finite first); a second call does nothing."""
        if self.merged:
            return
        # float64 then one rounding: the merged layer stays within float32 noise of the unmerged one
        new = self.merged_weight(torch.float64).to(self.base_layer.weight.dtype)
        if not torch.isfinite(new).all():
            raise ValueError("The LoRA weights contain NaN or Inf; merging would break the model. "
                             "Retrain with a lower learning rate or load a healthy checkpoint.")
        if self.use_dora:  # unmerge needs the norm of the unmerged weight
            self._merged_norm = self._weight_norm(self.delta_weight())
        self.base_layer.weight.copy_(new.T if self.fan_in_fan_out else new)
        self.merged = True

    @torch.no_grad()
    def unmerge(self) -> None:
        """Undo ``merge()`` (up to float rounding)."""
        if not self.merged:
            return
        weight = self.base_weight()
        if self.use_dora:
            weight = weight / (self.lora_magnitude_vector / self._merged_norm).view(-1, 1)
        weight = weight - self.delta_weight()
        self.base_layer.weight.copy_(weight.T if self.fan_in_fan_out else weight)
        self.merged = False

    def extra_repr(self) -> str:
        return f"r={self.r}, alpha={self.alpha}, scaling={self.scaling:g}, dora={self.use_dora}"
