"""Choosing the next token from logits: greedy or sampled (temperature, top-k, top-p), with repetition penalty.

The order follows HF ``generate``'s logits processors (penalty, temperature, top-k, top-p), so the same settings
mean the same thing in both; greedy decoding is an argmax after the penalty alone.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Optional, Sequence

import torch


@dataclass
class SamplingParams:
    """How to decode one answer (shared by every row of a batch)."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    top_k: int = 0                     # 0: no top-k filter
    repetition_penalty: float = 1.0    # 1.0: off; >1 discourages tokens already in the prompt or answer
    seed: int = 0
    stop_token_ids: Sequence[int] = field(default_factory=tuple)  # in addition to the tokenizer's end tokens
    stop_strings: Sequence[str] = field(default_factory=tuple)    # the answer is cut before the first one

    def __post_init__(self) -> None:
        if self.max_new_tokens < 1:
            raise ValueError(f"max_new_tokens must be at least 1, got {self.max_new_tokens}")
        if self.do_sample and self.temperature <= 0:
            raise ValueError(f"temperature must be > 0 when sampling, got {self.temperature}")
        if not 0 < self.top_p <= 1:
            raise ValueError(f"top_p must be in (0, 1], got {self.top_p}")

    def to_dict(self) -> dict:
        """Plain dict for reports."""
        return {**asdict(self), "stop_token_ids": list(self.stop_token_ids), "stop_strings": list(self.stop_strings)}


def make_generator(params: SamplingParams) -> Optional[torch.Generator]:
    """A private RNG seeded from ``params.seed`` (None for greedy): sampling never touches the global RNG."""
    if not params.do_sample:
        return None
    gen = torch.Generator()
    gen.manual_seed(params.seed)
    return gen


def apply_repetition_penalty(logits: torch.Tensor, seen: Sequence[Sequence[int]], penalty: float) -> torch.Tensor:
    """HF's rule per row: logits of seen tokens are divided by ``penalty`` when positive, multiplied when negative."""
    if penalty == 1.0:
        return logits
    logits = logits.clone()
    for r, ids in enumerate(seen):
        idx = torch.tensor(sorted(set(ids)), dtype=torch.long, device=logits.device)
        if idx.numel():
            s = logits[r, idx]
            logits[r, idx] = torch.where(s < 0, s * penalty, s / penalty)
    return logits


def filter_top_k_top_p(logits: torch.Tensor, top_k: int, top_p: float) -> torch.Tensor:
    """Set the logits outside the top-k / nucleus to -inf (at least one token always survives)."""
    if top_k > 0 and top_k < logits.shape[-1]:
        kth = torch.topk(logits, top_k, dim=-1).values[..., -1:]  # (B, 1)
        logits = logits.masked_fill(logits < kth, float("-inf"))
    if top_p < 1.0:
        sorted_logits, order = torch.sort(logits, descending=False)   # (B, V) ascending, as HF
        cum = sorted_logits.softmax(dim=-1).cumsum(dim=-1)
        drop_sorted = cum <= (1 - top_p)
        drop_sorted[..., -1:] = False
        drop = drop_sorted.scatter(1, order, drop_sorted)
        logits = logits.masked_fill(drop, float("-inf"))
    return logits


def next_tokens(logits: torch.Tensor, params: SamplingParams, seen: Sequence[Sequence[int]],
                generator: Optional[torch.Generator]) -> list[int]:
    """One token per row from ``logits`` (B, V); ``seen`` holds each row's prompt and answer ids (for the penalty)."""
    logits = apply_repetition_penalty(logits.float(), seen, params.repetition_penalty)
    if not params.do_sample:
        return logits.argmax(dim=-1).tolist()
    logits = filter_top_k_top_p(logits / params.temperature, params.top_k, params.top_p)
    probs = logits.softmax(dim=-1)
    return torch.multinomial(probs.cpu(), 1, generator=generator).view(-1).tolist()
