"""Batched generation for evaluation: the answers every metric, error and robustness check reads.

The decoding is our own (core/decoding: a shared prompt prefix computed once, continuous batching); HF
``generate`` stays only as the reference the decoder's tests compare against token for token.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Callable, Optional, Sequence

from core.decoding import Answer, Decoder, SamplingParams

ProgressFn = Callable[[float, str], None]
__all__ = ["Answer", "Decoding", "generate_batch"]


@dataclass
class Decoding:
    """Decoding settings, recorded in the report so base and tuned are compared under the same ones."""

    max_new_tokens: int = 128
    do_sample: bool = False
    temperature: float = 1.0
    top_p: float = 1.0
    batch_size: int = 8
    seed: int = 0

    def to_dict(self) -> dict:
        """Plain dict for the report."""
        return asdict(self)

    def sampling(self) -> SamplingParams:
        """The decoder's parameters for these settings."""
        return SamplingParams(max_new_tokens=self.max_new_tokens, do_sample=self.do_sample,
                              temperature=self.temperature, top_p=self.top_p, seed=self.seed)


def generate_batch(model, tok, prompts: Sequence[Sequence[int]], decoding: Optional[Decoding] = None,
                   progress: Optional[ProgressFn] = None, label: str = "generating") -> list[Answer]:
    """Answers for token-id prompts, in input order, from our continuous-batching decoder."""
    decoding = decoding or Decoding()
    return Decoder(model, tok).generate(prompts, decoding.sampling(), decoding.batch_size,
                                        progress=progress, label=label)
