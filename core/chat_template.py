"""Chat-template helpers shared by training, chat and evaluation: the ids that end an assistant turn, a
conversation rendered into prompt ids or answer ids the way the trainer renders it, and the named templates a
model without one of its own is given (explicitly, by the user's choice: never a silent plain-text fallback)."""
from __future__ import annotations

from core.errors import UserError

# Templates a model without a chat template can be given, by name. ChatML and Llama 3 render roles with special
# markers (added to the vocabulary when missing); "plain" writes "Role: text" lines, for base models.
TEMPLATES = {
    "chatml": ("{% for message in messages %}"
               "{{ '<|im_start|>' + message['role'] + '\n' + message['content'] + '<|im_end|>' + '\n' }}"
               "{% endfor %}{% if add_generation_prompt %}{{ '<|im_start|>assistant\n' }}{% endif %}"),
    "llama3": ("{% for message in messages %}"
               "{{ '<|start_header_id|>' + message['role'] + '<|end_header_id|>\n\n' + message['content'] + "
               "'<|eot_id|>' }}{% endfor %}"
               "{% if add_generation_prompt %}{{ '<|start_header_id|>assistant<|end_header_id|>\n\n' }}{% endif %}"),
    "plain": ("{% for message in messages %}{{ message['role'] | capitalize + ': ' + message['content'] + "
              "eos_token + '\n' }}{% endfor %}{% if add_generation_prompt %}{{ 'Assistant: ' }}{% endif %}"),
}
TEMPLATE_TOKENS = {"chatml": ["<|im_start|>", "<|im_end|>"],
                   "llama3": ["<|start_header_id|>", "<|end_header_id|>", "<|eot_id|>"], "plain": []}


def has_chat_template(tok) -> bool:
    """Whether the tokenizer carries a chat template of its own (or one applied with ``apply_template``)."""
    return bool(getattr(tok, "chat_template", None))


def apply_template(tok, name: str):
    """Give ``tok`` the named template (its marker tokens added as special tokens when missing); returns ``tok``.

    Added tokens grow the vocabulary: the model's embeddings must then be resized (``models.load_model`` does).
    """
    if name not in TEMPLATES:
        raise UserError(f"Unknown chat template {name!r}; choose one of {', '.join(TEMPLATES)}.")
    missing = [t for t in TEMPLATE_TOKENS[name] if t not in tok.get_vocab()]
    if missing:
        tok.add_special_tokens({"additional_special_tokens": missing})
    tok.chat_template = TEMPLATES[name]
    return tok


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
