"""Documents for continued pretraining: token windows of max_seq_len with a stated overlap, every token learned.

A document's tokens (eos appended) are cut into windows ``[start, start + size)``; the next window starts
``overlap`` tokens before the previous one ends, so its first tokens are predicted with context. Labels cover
every token once: the overlapping tokens are labelled in the earlier window only (-100 in the later one).
Short documents are packed first (concatenated, eos between them) when that saves padding (``pack_pays``).
"""
from __future__ import annotations

import math

from core.defaults import DOC_CHUNK_OVERLAP, DOC_PACK_BELOW

IGNORE = -100


def effective_overlap(size: int, overlap: int = DOC_CHUNK_OVERLAP) -> int:
    """The overlap actually used: at most half a window, so every window moves forward by at least half."""
    return max(0, min(int(overlap), int(size) // 2))


def chunk_spans(n: int, size: int, overlap: int = DOC_CHUNK_OVERLAP) -> list[tuple[int, int]]:
    """Windows ``(start, end)`` covering ``n`` tokens; consecutive windows share ``effective_overlap`` tokens."""
    if size < 1:
        raise ValueError("size must be >= 1")
    step_back = effective_overlap(size, overlap)
    spans, start = [], 0
    while True:
        end = min(n, start + size)
        spans.append((start, end))
        if end >= n:
            return spans
        start = end - step_back


def count_chunks(n: int, size: int, overlap: int = DOC_CHUNK_OVERLAP) -> int:
    """How many windows ``chunk_spans`` makes of ``n`` tokens (without building them)."""
    if n <= size:
        return 1
    stride = size - effective_overlap(size, overlap)
    return 1 + math.ceil((n - size) / stride)


def chunk_document(ids: list[int], size: int, overlap: int = DOC_CHUNK_OVERLAP) -> list[dict]:
    """``{"input_ids", "labels"}`` windows of one token sequence; each token is labelled in exactly one window."""
    examples, learned_to = [], 0
    for start, end in chunk_spans(len(ids), size, overlap):
        window = list(ids[start:end])
        skip = learned_to - start  # tokens the previous window already learned: context only here
        examples.append({"input_ids": window, "labels": [IGNORE] * skip + window[skip:]})
        learned_to = end
    return examples


def pack_pays(lengths: list[int], size: int) -> bool:
    """True when the documents are short enough that windows of one document each would be mostly padding."""
    return bool(lengths) and sum(lengths) / len(lengths) < DOC_PACK_BELOW * size


def plan_chunks(lengths: list[int], size: int, overlap: int = DOC_CHUNK_OVERLAP) -> dict:
    """The counts ``document_examples`` reports, from token lengths alone (eos included): for Analyze."""
    packed = pack_pays(lengths, size) and len(lengths) > 1
    streams = [sum(lengths)] if packed else lengths
    return {"documents": len(lengths), "chunks": sum(count_chunks(n, size, overlap) for n in streams if n),
            "doc_tokens": sum(lengths), "chunk_overlap": effective_overlap(size, overlap), "documents_packed": packed}


def document_examples(docs: list[list[int]], size: int, overlap: int = DOC_CHUNK_OVERLAP) -> tuple[list[dict], dict]:
    """Windows of many documents (each already ending with eos), packed first when that pays; plus counts."""
    packed = pack_pays([len(d) for d in docs], size) and len(docs) > 1
    streams = [[t for d in docs for t in d]] if packed else docs
    examples = [ex for ids in streams if ids for ex in chunk_document(ids, size, overlap)]
    return examples, {**plan_chunks([len(d) for d in docs], size, overlap), "chunks": len(examples)}
