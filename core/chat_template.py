"""Chat-template helpers shared by training, chat and evaluation: the ids that end an assistant turn, and a
conversation rendered into prompt ids or answer ids the way the trainer renders it."""
from __future__ import annotations


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
