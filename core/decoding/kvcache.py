"""The model forward with a key/value cache we control, and the cache surgery the batch decoder needs.

Layout of a batch cache (per layer, ``(rows, kv_heads, columns, head_dim)``)::

    [ V virtual tokens | P shared prefix tokens | row region: each row's own tokens, right-aligned ]

V > 0 only with our prefix tuning: its pre-hook (core/peft/prefix.py) writes the virtual tokens into an empty cache
and prepends V ones to every 2-D attention mask, and shifts explicit position ids by V. So everything here counts
*real* columns: a mask has ``columns - V`` entries, positions start at 0 for the first real token, and cache
surgery adds V to column indices. Rows are right-aligned so one decode step appends one column to every row; the
columns a row does not use (left of its tokens) are masked out with zeros in its 2-D mask.
"""
from __future__ import annotations

from typing import Callable, Optional

import torch
from transformers import DynamicCache
from transformers.cache_utils import DynamicLayer

from core.decoding.threads import threads_for_decoding

Tensor = torch.Tensor


def virtual_tokens(model) -> int:
    """How many prefix-tuning virtual tokens the model's pre-hook puts first in every cache (0 without)."""
    prefix = getattr(model, "prefix_tuning", None)
    return int(prefix.num_virtual_tokens) if prefix is not None else 0


class GrowingLayer(DynamicLayer):
    """A DynamicLayer whose keys/values sit in buffers with spare columns: a decode step writes its column in place
    instead of copying the whole cache (DynamicLayer's torch.cat, ~8% of a SmolLM2-sized batch-32 step).

    ``keys``/``values`` read as views of the filled columns; assigning them (cache surgery, crop, row selection)
    adopts the tensor with no spare room, so a later write always goes to a fresh buffer, never into a tensor
    that someone else may share."""

    def __init__(self, **kwargs):
        self._k = self._v = None
        self._nk = self._nv = 0  # filled columns; apart, because crop() assigns keys before it reads values
        super().__init__(**kwargs)

    @property
    def keys(self):  # noqa: D102 - the filled part of the buffer
        return None if self._k is None else self._k[:, :, :self._nk]

    @keys.setter
    def keys(self, t) -> None:
        self._k, self._nk = t, (t.shape[2] if t is not None and t.dim() == 4 else 0)

    @property
    def values(self):  # noqa: D102
        return None if self._v is None else self._v[:, :, :self._nv]

    @values.setter
    def values(self, t) -> None:
        self._v, self._nv = t, (t.shape[2] if t is not None and t.dim() == 4 else 0)

    def lazy_initialization(self, key_states: Tensor, value_states: Tensor) -> None:
        """Empty ``(B, H, 0, D)`` buffers of the right dtype and device."""
        self.device = key_states.device
        self.keys = key_states[:, :, :0]
        self.values = value_states[:, :, :0]
        self.is_initialized = True

    def update(self, key_states: Tensor, value_states: Tensor, *args, **kwargs) -> tuple[Tensor, Tensor]:
        """Append ``(B, H, q, D)`` keys/values; returns all of them (views)."""
        if not self.is_initialized:
            self.lazy_initialization(key_states, value_states)
        n, q = self._nk, key_states.shape[2]
        if n + q > self._k.shape[2] or self._k.shape[0] != key_states.shape[0]:
            self._grow(n + q, key_states.shape[0])
        self._k[:, :, n:n + q] = key_states
        self._v[:, :, n:n + q] = value_states
        self._nk = self._nv = n + q
        return self.keys, self.values

    def _grow(self, need: int, rows: int) -> None:
        n, (_, heads, _, dim) = self._nk, self._k.shape
        cap = need + max(32, n // 2)  # amortised: about log(T) copies for T columns
        k = self._k.new_empty(rows, heads, cap, dim)
        v = self._v.new_empty(rows, self._v.shape[1], cap, self._v.shape[3])
        if n:
            k[:, :, :n], v[:, :, :n] = self._k[:, :, :n], self._v[:, :, :n]
        self._k, self._v = k, v


class Runner:
    """Runs the model on new tokens against a cache; counts the token positions it computes."""

    def __init__(self, model):
        self.model = model
        self.device = next(model.parameters()).device
        self.virtual = virtual_tokens(model)
        self.forward_tokens = 0  # positions run through the model (padding included), read by tests and benches

    def new_cache(self) -> DynamicCache:
        """An empty cache shaped for this model's layers (full-attention layers grow in place)."""
        cache = DynamicCache(config=self.model.config)
        cache.layers = [GrowingLayer() if type(layer) is DynamicLayer else layer for layer in cache.layers]
        return cache

    @torch.no_grad()
    def forward(self, ids: Tensor, mask: Tensor, pos: Tensor, cache: DynamicCache, keep: int = 1) -> Tensor:
        """Logits ``(B, keep, vocab)`` of the last ``keep`` positions (0: all) of ``ids`` (B, q).

        ``mask`` (B, real columns + q) and ``pos`` (B, q) are in real-token units (see the module docstring)."""
        self.forward_tokens += ids.numel()
        with threads_for_decoding():
            out = self.model(input_ids=ids.to(self.device), attention_mask=mask.to(self.device),
                             position_ids=pos.to(self.device), cache=cache, use_cache=True, logits_to_keep=keep)
        return out.logits


def _map_layers(cache: DynamicCache, fn: Callable[[Tensor], Tensor]) -> None:
    for layer in cache.layers:
        if layer.is_initialized and layer.keys is not None and layer.keys.numel():
            layer.keys, layer.values = fn(layer.keys), fn(layer.values)


def fork(cache: Optional[DynamicCache], rows: int, runner: Runner) -> DynamicCache:
    """A new cache holding ``rows`` copies of a 1-row cache (an empty one when ``cache`` is None)."""
    out = runner.new_cache()
    if cache is None:
        return out
    for i, layer in enumerate(cache.layers):
        out.update(layer.keys.expand(rows, -1, -1, -1), layer.values.expand(rows, -1, -1, -1), i)
    return out


def insert_columns(cache: DynamicCache, at: int, n: int) -> None:
    """Insert ``n`` zero columns before cache column ``at`` in every layer (they are masked, so zeros are fine)."""
    if n > 0:
        def pad(t: Tensor) -> Tensor:
            zeros = t.new_zeros(t.shape[0], t.shape[1], n, t.shape[3])
            return torch.cat([t[:, :, :at], zeros, t[:, :, at:]], dim=2)
        _map_layers(cache, pad)


def drop_columns(cache: DynamicCache, start: int, stop: int) -> None:
    """Remove cache columns ``[start, stop)`` from every layer."""
    if stop > start:
        _map_layers(cache, lambda t: torch.cat([t[:, :, :start], t[:, :, stop:]], dim=2))


def select_rows(cache: DynamicCache, keep: Tensor) -> None:
    """Keep only the rows ``keep`` (1-D long) of every layer."""
    _map_layers(cache, lambda t: t.index_select(0, keep.to(t.device)))


def concat_rows(a: DynamicCache, b: DynamicCache) -> DynamicCache:
    """``a``'s rows then ``b``'s rows (same columns); returns ``a``, extended in place."""
    for la, lb in zip(a.layers, b.layers):
        la.keys, la.values = torch.cat([la.keys, lb.keys], dim=0), torch.cat([la.values, lb.values], dim=0)
    return a


def crop_to(cache: DynamicCache, real_columns: int, virtual: int) -> None:
    """Keep the virtual tokens and the first ``real_columns`` real ones (a chat turn that rewrote the tail)."""
    extra = cache.get_seq_length() - virtual - real_columns
    if extra > 0:
        cache.crop(-extra)
