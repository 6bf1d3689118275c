"""Turning conversations into prompt token ids and reference answers, the same way the trainer renders them."""
from __future__ import annotations

from typing import Optional

# The token-level chat-template helpers live with the models; evaluation modules take them from here too.
from core.chat_template import answer_ids, end_token_ids, prompt_ids  # noqa: F401


def split_conversation(conv: dict, system_prompt: Optional[str] = None) -> tuple[list[dict], str]:
    """(prompt messages up to the last assistant turn, that turn's text); the run's system prompt added when absent."""
    messages = list(conv.get("messages") or [])
    last = max((i for i, m in enumerate(messages) if m.get("role") == "assistant"), default=None)
    reference = messages[last]["content"] if last is not None else ""
    prompt = messages[:last] if last is not None else messages
    if system_prompt and not any(m.get("role") == "system" for m in prompt):
        prompt = [{"role": "system", "content": system_prompt}] + prompt
    return prompt, reference


def last_user_text(messages: list[dict]) -> str:
    """The content of the last user message ('' when there is none)."""
    for m in reversed(messages):
        if m.get("role") == "user":
            return m.get("content") or ""
    return ""


def replace_last_user(messages: list[dict], text: str) -> list[dict]:
    """A copy of ``messages`` whose last user message reads ``text``."""
    out = [dict(m) for m in messages]
    for m in reversed(out):
        if m.get("role") == "user":
            m["content"] = text
            break
    return out
