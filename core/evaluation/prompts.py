"""Turning conversations into prompt token ids and reference answers, the same way the trainer renders them."""
from __future__ import annotations

from typing import Optional


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


def end_token_ids(tok) -> list[int]:
    """Ids that end an assistant turn: the eos token and ChatML's ``<|im_end|>`` when the vocabulary has it."""
    ids = []
    for t in (tok.eos_token, "<|im_end|>", "<|eot_id|>", "<|end|>"):
        if t is None:
            continue
        i = tok.convert_tokens_to_ids(t)
        if isinstance(i, int) and i >= 0 and i != tok.unk_token_id and i not in ids:
            ids.append(i)
    if tok.eos_token_id is not None and tok.eos_token_id not in ids:
        ids.insert(0, tok.eos_token_id)
    return ids


def prompt_ids(tok, messages: list[dict]) -> list[int]:
    """Token ids of ``messages`` rendered with the chat template and the assistant generation prompt."""
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def answer_ids(tok, messages: list[dict], answer: str) -> list[int]:
    """Ids of ``answer`` as the assistant turn after ``messages``, up to and including the turn's end token."""
    prompt_text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    full = tok.apply_chat_template(messages + [{"role": "assistant", "content": answer}], tokenize=False)
    ends = end_token_ids(tok)
    if full.startswith(prompt_text):
        ids = tok(full[len(prompt_text):], add_special_tokens=False)["input_ids"]
        for i, t in enumerate(ids):
            if t in ends:
                return ids[:i + 1]
    # A template that rewrites earlier turns, or none that closes the turn: the answer then the end token.
    return tok(answer, add_special_tokens=False)["input_ids"] + ends[:1]
