"""How a release-gate check asks a model: an ``answer`` callable, called in chunks so the check can show progress.

``answer(prompts: list[list[dict]]) -> list[str]`` answers chat-message lists with one model (the caller builds it
over core/decoding, or a test passes a fake). The checks never load a model themselves.
"""
from __future__ import annotations

from typing import Callable, Optional

from core.errors import UserError

AnswerFn = Callable[[list[list[dict]]], list[str]]
ProgressFn = Callable[[float, str], None]
CHUNK = 8   # prompts per call: one decoder batch, and often enough progress updates on a CPU


def answer_all(answer: AnswerFn, prompts: list[list[dict]], progress: Optional[ProgressFn] = None,
               span: tuple[float, float] = (0.0, 1.0), code: str = "") -> list[str]:
    """``answer`` over every prompt in chunks of CHUNK, reporting progress from ``span[0]`` to ``span[1]``."""
    out: list[str] = []
    lo, hi = span
    for start in range(0, len(prompts), CHUNK):
        if progress:
            progress(lo + (hi - lo) * start / max(1, len(prompts)), code)
        chunk = prompts[start:start + CHUNK]
        answers = list(answer(chunk))
        if len(answers) != len(chunk):
            raise ValueError(f"answer() returned {len(answers)} answers for {len(chunk)} prompts")
        if not all(isinstance(a, str) for a in answers):
            raise TypeError("answer() must return strings (the answers' text)")
        out.extend(answers)
    if progress:
        progress(hi, code)
    return out


def check_limit(limit: Optional[int]) -> None:
    """Raise UserError for a size limit below 1 (None means no limit)."""
    if limit is not None and limit < 1:
        raise UserError(f"The check's limit must be at least 1, got {limit}.")
