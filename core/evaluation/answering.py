"""How a release-gate check asks a model: an ``answer`` callable, called in chunks so the check can show progress.

``answer(prompts: list[list[dict]]) -> list[str]`` answers chat-message lists with one model (the caller builds it
over core/decoding with ``answer_fn``, or a test passes a fake). The checks never load a model themselves.
"""
from __future__ import annotations

from typing import Callable, Optional

from core.errors import UserError

AnswerFn = Callable[[list[list[dict]]], list[str]]
ProgressFn = Callable[[float, str], None]
CHUNK = 8   # prompts per call: one decoder batch, and often enough progress updates on a CPU
CHECK_MAX_NEW_TOKENS = 96   # the checks read short answers: a refusal, a fact, a repeated secret


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


def answer_fn(model, tok, system_prompt: Optional[str] = None, max_new_tokens: int = CHECK_MAX_NEW_TOKENS
              ) -> AnswerFn:
    """Greedy answers of ``model`` to chat-message lists, from our decoder, with the run's system prompt put first
    when a prompt brings none (the setting the assistant is trained and served in)."""
    from core.evaluation.generation import Decoding, generate_batch
    from core.evaluation.prompts import prompt_ids

    decoding = Decoding(max_new_tokens=max_new_tokens, batch_size=CHUNK)  # a chunk is one decoder batch

    def answer(prompts: list[list[dict]]) -> list[str]:
        ids = [prompt_ids(tok, with_system(m, system_prompt)) for m in prompts]
        return [a.text for a in generate_batch(model, tok, ids, decoding)]
    return answer


def with_system(messages: list[dict], system_prompt: Optional[str]) -> list[dict]:
    """``messages`` with ``system_prompt`` first unless they already have a system message."""
    if not system_prompt or any(m.get("role") == "system" for m in messages):
        return messages
    return [{"role": "system", "content": system_prompt}, *messages]
