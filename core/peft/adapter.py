"""Bottleneck adapters (Houlsby et al. 2019) after the attention and/or MLP sub-layer of every block.

``AdapterLayer(h) = h + up(act(down(dropout(h))))`` with ``down: d -> b`` and ``up: b -> d``; ``up`` starts at zero
(weight and bias) so the block computes exactly what it did before. The adapter sees the sub-layer's output
*before* the block adds its residual, as in Houlsby's design.

``AdapterTransformerLayer`` is attached to each block as ``<block>.adapters`` and holds one ``AdapterLayer`` per
placement (``attn``, ``mlp``). It registers forward hooks on the block's sub-layers, so the base model's module
tree and parameter names stay untouched (a plain ``state_dict`` of the base still loads).

Trainable parameters with hidden size ``d``, bottleneck ``b``, ``L`` blocks and ``k`` placements (1 or 2):
``L * k * (d*b + b + b*d + d) = L * k * (2*d*b + b + d)``. SmolLM2-135M (d=576, L=30), b=64, k=2:
``30 * 2 * (73,728 + 640) = 4,462,080``.
"""
from __future__ import annotations

import torch
import torch.nn as nn

from core.peft.config import AdapterConfig
from core.peft.dropout import FastDropout
from core.peft.inject import attention_of, mlp_of

ACTIVATIONS = {"gelu": nn.GELU, "relu": nn.ReLU, "silu": nn.SiLU, "tanh": nn.Tanh}


class AdapterLayer(nn.Module):
    """Houlsby bottleneck with an internal residual; identity at initialisation."""

    def __init__(self, hidden_size: int, bottleneck: int, nonlinearity: str = "gelu", dropout: float = 0.0):
        super().__init__()
        self.dropout = FastDropout(dropout) if dropout > 0 else nn.Identity()
        self.down = nn.Linear(hidden_size, bottleneck)
        self.act = ACTIVATIONS[nonlinearity]()
        self.up = nn.Linear(bottleneck, hidden_size)
        nn.init.zeros_(self.up.weight)
        nn.init.zeros_(self.up.bias)

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        """``h + up(act(down(dropout(h))))``."""
        return hidden + self.up(self.act(self.down(self.dropout(hidden))))


class AdapterTransformerLayer(nn.Module):
    """The adapters of one block, applied to its sub-layers' outputs through forward hooks."""

    def __init__(self, block: nn.Module, hidden_size: int, cfg: AdapterConfig):
        super().__init__()
        finders = {"attn": attention_of, "mlp": mlp_of}
        self._handles = []
        for place in cfg.placement:
            _, sub_layer = finders[place](block)
            self.add_module(place, AdapterLayer(hidden_size, cfg.bottleneck, cfg.nonlinearity, cfg.dropout))
            hook = self._attn_hook if place == "attn" else self._mlp_hook
            self._handles.append(sub_layer.register_forward_hook(hook))

    # Bound methods (not closures) so that copy.deepcopy of the model re-binds them to the copied adapters.
    def _attn_hook(self, module, inputs, output):
        return _apply(self.attn, output)

    def _mlp_hook(self, module, inputs, output):
        return _apply(self.mlp, output)

    def remove(self) -> None:
        """Detach the hooks (the adapters stop acting)."""
        for handle in self._handles:
            handle.remove()
        self._handles = []


def _apply(adapter: AdapterLayer, output):
    # Attention sub-layers return (hidden, attn_weights, ...); MLPs return the tensor itself.
    if isinstance(output, tuple):
        return (adapter(output[0]),) + tuple(output[1:])
    return adapter(output)


def missing_sublayers(blocks: nn.ModuleList, placement: tuple) -> list[str]:
    """Problems: placements whose sub-layer cannot be found in the blocks."""
    finders = {"attn": attention_of, "mlp": mlp_of}
    block = blocks[0]
    return [f"no {place} sub-layer found in {type(block).__name__} (children: "
            f"{', '.join(n for n, _ in block.named_children())})"
            for place in placement if finders[place](block) is None]


def inject_adapters(blocks: nn.ModuleList, hidden_size: int, cfg: AdapterConfig) -> None:
    """Attach an ``AdapterTransformerLayer`` as ``block.adapters`` to every block."""
    ref = next(blocks[0].parameters())
    for block in blocks:
        adapters = AdapterTransformerLayer(block, hidden_size, cfg).to(device=ref.device, dtype=ref.dtype)
        block.adapters = adapters.train(block.training)  # follow the model's train/eval mode
