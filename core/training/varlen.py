"""Unpadded ("variable-length") training forward: the rows of a padded batch run as one packed sequence.

Padding costs as much arithmetic as a real token, and a batch of chat examples of 30–160 tokens is a fifth to a
third padding. Packing removes it, but the packed mask transformers builds for sdpa is a dense 4-D tensor, which
sends attention down its slow path (measured: packed rows at 109 tokens/s against 188 padded). Here the linear
layers — nearly all of the arithmetic — see every real token of the batch as one ``(1, N)`` sequence, and
attention runs per example (``varlen_attention``): each example's queries attend to its own keys, causally, plus
to any keys already in the cache (a prompt prefix shared by every row, or prefix tuning's virtual tokens).
A span may also name a context span of the same packed row that its queries see in full (a preference pair's
chosen and rejected answers both read their prompt, packed once before them).

The spans of the examples reach the attention function through a context variable, set for one forward call by
``varlen_spans``; the model's attention implementation is switched to ``"af_varlen"`` for that call only.
"""
from __future__ import annotations

import contextlib
import contextvars
import functools

import torch
import torch.nn.functional as F

IMPLEMENTATION = "af_varlen"
_SPANS: contextvars.ContextVar = contextvars.ContextVar("af_varlen_spans", default=None)
_registered = False


def varlen_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None, **kwargs):
    """Causal attention per example of a packed row; keys before the packed tokens (cache) are visible to all.

    query ``(1, H, N, D)``; key/value ``(1, KVH, P + N, D)`` with P cached positions. Returns ``(1, N, H, D)``.
    A span is ``(start, length)`` or ``(start, length, context_start, context_length)``: the context's keys (packed
    positions) are visible in full to the span's queries, between the cache and the span's own keys.
    """
    spans = _SPANS.get()
    if spans is None:
        raise RuntimeError("varlen_attention needs the example spans: run the forward inside varlen_spans().")
    n_total = query.shape[2]
    cached = key.shape[2] - n_total
    groups = query.shape[1] // key.shape[1]
    p = dropout if module.training else 0.0
    outs = []
    for span in spans:
        start, length = span[0], span[1]
        ctx_start, ctx_len = span[2:4] if len(span) > 2 else (0, 0)
        q = query[:, :, start:start + length]
        own = slice(cached + start, cached + start + length)
        ctx = slice(cached + ctx_start, cached + ctx_start + ctx_len)
        k, v = key[:, :, own], value[:, :, own]
        seen = cached + ctx_len  # keys every query of the span sees
        mask = None
        if seen:
            k = torch.cat([key[:, :, :cached], key[:, :, ctx], k], dim=2)
            v = torch.cat([value[:, :, :cached], value[:, :, ctx], v], dim=2)
            mask = _offset_causal_mask(length, seen, query.device)
        # Grouped-query attention (each key/value head serves `groups` query heads) inside sdpa: expanding the
        # keys/values here would keep the expanded copies for backward (measured: a tenth of the activations).
        outs.append(F.scaled_dot_product_attention(q, k, v, attn_mask=mask, dropout_p=p, scale=scaling,
                                                   is_causal=mask is None, enable_gqa=groups > 1))
    out = torch.cat(outs, dim=2) if len(outs) > 1 else outs[0]  # (1, H, N, D)
    return out.transpose(1, 2).contiguous(), None


@functools.lru_cache(maxsize=64)  # every layer of a forward asks for the same few (read-only) masks
def _offset_causal_mask(length: int, cached: int, device) -> torch.Tensor:
    """``(length, cached + length)`` bool: every cached key, then the example's own keys causally."""
    own = torch.ones(length, length, dtype=torch.bool, device=device).tril()
    return torch.cat([torch.ones(length, cached, dtype=torch.bool, device=device), own], dim=1)


def register() -> None:
    """Make ``"af_varlen"`` a transformers attention implementation (no mask is built for it)."""
    global _registered
    if _registered:
        return
    from transformers import AttentionInterface

    AttentionInterface.register(IMPLEMENTATION, _dispatch)
    _registered = True


def _dispatch(*args, **kwargs):
    return varlen_attention(*args, **kwargs)  # looked up per call, so a wrapped varlen_attention is the one used


@contextlib.contextmanager
def varlen_spans(model, spans: list[tuple[int, ...]]):
    """For one forward call: attention per span of the packed row (``varlen_attention``'s spans)."""
    register()
    configs = _attention_configs(model)
    saved = [c._attn_implementation for c in configs]
    token = _SPANS.set(spans)
    try:
        for c in configs:
            c._attn_implementation = IMPLEMENTATION
        yield
    finally:
        for c, impl in zip(configs, saved):
            c._attn_implementation = impl
        _SPANS.reset(token)


def _attention_configs(model) -> list:
    """Every distinct config object the model's attention layers read their implementation from."""
    seen, out = set(), []
    for module in model.modules():
        cfg = getattr(module, "config", None)
        if cfg is not None and hasattr(cfg, "_attn_implementation") and id(cfg) not in seen:
            seen.add(id(cfg))
            out.append(cfg)
    return out


def supported(model) -> bool:
    """Whether the model's attention dispatches through transformers' AttentionInterface (so varlen can run)."""
    return getattr(model.config, "_attn_implementation", None) in ("sdpa", "eager", IMPLEMENTATION)
