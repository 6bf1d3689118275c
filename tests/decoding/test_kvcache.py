"""GrowingLayer behaves as transformers' DynamicLayer (update, crop, row selection) while writing in place."""
from __future__ import annotations

import torch
from transformers.cache_utils import DynamicLayer

from core.decoding.kvcache import GrowingLayer


def test_growing_layer_matches_dynamic_layer_and_appends_in_place():
    gen = torch.Generator().manual_seed(0)
    ours, ref = GrowingLayer(), DynamicLayer()
    chunks = [torch.randn(3, 2, q, 4, generator=gen) for q in (5, 1, 1, 7, 1)]
    buffers = set()
    for c in chunks:
        k, v = ours.update(c, -c)
        rk, rv = ref.update(c, -c)
        assert torch.equal(k, rk) and torch.equal(v, rv)
        buffers.add(ours._k.data_ptr())
    assert len(buffers) <= 3  # 5 appends, at most 3 allocations (spare columns absorb the single-token steps)
    for layer in (ours, ref):
        layer.crop(-4)
        layer.batch_select_indices(torch.tensor([2, 0]))
    assert ours.get_seq_length() == ref.get_seq_length() == 11
    assert torch.equal(ours.keys, ref.keys) and torch.equal(ours.values, ref.values)
    shared = ours.keys
    snapshot = shared.clone()
    ours.update(chunks[1][:2], chunks[1][:2])
    assert torch.equal(shared, snapshot)  # an adopted tensor is never written into
    assert torch.equal(ours.keys[:, :, :11], ref.keys) and ours.get_seq_length() == 12
