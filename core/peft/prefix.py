"""Prefix tuning (Li & Liang 2021): learned key/value prefixes for every attention layer.

``PrefixTuning`` produces, for each layer, keys and values of shape ``(batch, kv_heads, P, head_dim)`` (P virtual
tokens; ``kv_heads`` is the number of *key/value* heads, so grouped-query attention works: SmolLM2 has 3 of them
for 9 query heads). During training they come from an MLP reparameterisation, as in HF peft:
``embedding(P, d_kv) -> Linear(d_kv, m) -> Tanh -> Linear(m, 2*L*d_kv)`` with ``d_kv = kv_heads * head_dim``;
``fold()`` runs the MLP once and keeps only the resulting tensor (inference form, same numbers).

The prefixes reach the model through a forward pre-hook on the backbone (the module holding the blocks): when no
cache is given, or an empty one (the first step of ``generate()``), the hook fills a ``DynamicCache`` with them and
prepends P ones to the 2-D attention mask. Position ids follow HF peft: the real tokens continue after the prefix
(explicit ``position_ids`` are shifted by P; without them the model counts from the cache length, P). So plain
``model(input_ids, attention_mask, labels)``, right-padded training batches and ``generate()`` on left-padded
batches all work, and the logits equal peft's for the same prefix weights.

Trainable parameters with ``L`` layers, ``P`` virtual tokens, ``d_kv`` and projection size ``m``:
with the MLP ``P*d_kv + (d_kv*m + m) + (m*2*L*d_kv + 2*L*d_kv)``; without (m=0) or after ``fold()``: ``P*2*L*d_kv``.
SmolLM2-135M (L=30, d_kv=3*64=192) with the defaults P=20, m=512: ``6,012,416`` (as HF peft); folded: ``230,400``.
"""
from __future__ import annotations

import inspect

import torch
import torch.nn as nn

from core.errors import UserError
from core.peft.config import PrefixConfig


def kv_shape(config) -> tuple[int, int]:
    """``(kv_heads, head_dim)`` of a model config (GQA-aware)."""
    text = config.get_text_config(decoder=True) if hasattr(config, "get_text_config") else config
    hidden = getattr(text, "hidden_size", None) or getattr(text, "n_embd")
    heads = getattr(text, "num_attention_heads", None) or getattr(text, "n_head")
    head_dim = getattr(text, "head_dim", None) or hidden // heads
    kv_heads = getattr(text, "num_key_value_heads", None) or heads
    return kv_heads, head_dim


class PrefixTuning(nn.Module):
    """Per-layer key/value prefixes, optionally from an MLP reparameterisation."""

    def __init__(self, cfg: PrefixConfig, num_layers: int, kv_heads: int, head_dim: int):
        super().__init__()
        self.num_virtual_tokens, self.num_layers = cfg.num_virtual_tokens, num_layers
        self.kv_heads, self.head_dim = kv_heads, head_dim
        token_dim = kv_heads * head_dim
        out_dim = num_layers * 2 * token_dim
        self.folded = cfg.projection_dim == 0
        if self.folded:
            self.embedding = nn.Embedding(cfg.num_virtual_tokens, out_dim)
        else:
            self.embedding = nn.Embedding(cfg.num_virtual_tokens, token_dim)
            self.transform = nn.Sequential(nn.Linear(token_dim, cfg.projection_dim), nn.Tanh(),
                                           nn.Linear(cfg.projection_dim, out_dim))

    def flat_prefix(self) -> torch.Tensor:
        """``(P, L*2*kv_heads*head_dim)``: the MLP output, or the stored tensor once folded."""
        if self.folded:
            return self.embedding.weight
        return self.transform(self.embedding.weight)

    def key_values(self, batch_size: int, dtype: torch.dtype) -> list[tuple[torch.Tensor, torch.Tensor]]:
        """One ``(keys, values)`` pair per layer, each ``(batch, kv_heads, P, head_dim)``."""
        flat = self.flat_prefix().to(dtype)
        # peft's layout: (P, L*2, heads, head_dim) with keys at 2*l and values at 2*l+1
        kv = flat.view(self.num_virtual_tokens, self.num_layers * 2, self.kv_heads, self.head_dim)
        kv = kv.permute(1, 2, 0, 3).unsqueeze(1).expand(-1, batch_size, -1, -1, -1)
        return [(kv[2 * i], kv[2 * i + 1]) for i in range(self.num_layers)]

    @torch.no_grad()
    def fold(self) -> None:
        """Replace the MLP by the prefix tensor it computes (inference form; no-op if already folded)."""
        if self.folded:
            return
        flat = self.flat_prefix().detach().clone()
        del self.transform
        self.embedding = nn.Embedding.from_pretrained(flat, freeze=False)
        self.folded = True

    # ------------------------------------------------------------------ the hook on the backbone
    def attach(self, backbone: nn.Module) -> None:
        """Make ``backbone`` receive the prefixes on every call."""
        self._positional = [p.name for p in inspect.signature(backbone.forward).parameters.values()
                            if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
        self._handle = backbone.register_forward_pre_hook(self._pre_hook, with_kwargs=True)

    def _pre_hook(self, backbone: nn.Module, args: tuple, kwargs: dict):
        kwargs = {**dict(zip(self._positional, args)), **kwargs}  # GPT-2 passes input_ids positionally
        if "past_key_values" in kwargs:  # transformers 5 renamed it `cache`
            kwargs["cache"] = kwargs.pop("past_key_values")
        if kwargs.get("position_ids") is not None:  # counted without the prefix (e.g. by generate())
            kwargs["position_ids"] = kwargs["position_ids"] + self.num_virtual_tokens
        cache = kwargs.get("cache")
        if cache is not None and cache.get_seq_length() > 0:
            return (), self._extend_mask(kwargs)  # later generate() steps: the prefix is already cached
        if backbone.training and getattr(backbone, "gradient_checkpointing", False):
            raise UserError("Prefix tuning does not work with gradient checkpointing (the cache is dropped); "
                            "turn gradient checkpointing off.")
        embeds = kwargs.get("inputs_embeds")
        batch_size = (embeds if embeds is not None else kwargs["input_ids"]).shape[0]
        kwargs["cache"] = self._filled_cache(backbone, cache, batch_size)
        return (), self._extend_mask(kwargs)

    def _filled_cache(self, backbone: nn.Module, cache, batch_size: int):
        from transformers import DynamicCache

        if cache is None:
            cache = DynamicCache(config=backbone.config)
        dtype = next(backbone.parameters()).dtype
        for layer_idx, (keys, values) in enumerate(self.key_values(batch_size, dtype)):
            cache.update(keys, values, layer_idx)
        return cache

    def _extend_mask(self, kwargs: dict) -> dict:
        mask = kwargs.get("attention_mask")
        if mask is not None and mask.dim() == 2:
            ones = torch.ones(mask.shape[0], self.num_virtual_tokens, dtype=mask.dtype, device=mask.device)
            kwargs["attention_mask"] = torch.cat([ones, mask], dim=1)
        return kwargs
