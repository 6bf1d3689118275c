"""Shared helpers for the decoder tests: tiny models with every PEFT method, chat prompts, HF references."""
from __future__ import annotations

import torch

from core.models import tiny_model
from core.peft import AdapterConfig, LoRAConfig, PrefixConfig, apply_peft, merge_lora, method_parameter_names

KINDS = ("tiny-llama", "tiny-gpt2")
METHODS = ("base", "lora", "dora", "adapter", "prefix", "merged")
TARGETS = {"tiny-llama": ("q_proj", "v_proj"), "tiny-gpt2": ("c_attn", "c_fc")}
SYSTEM = "You are a helpful support agent."
QUESTIONS = ("hi", "where is my order #123?", "x", "I want a refund for the blue shoes, please", "ok?",
             "cancel it")


def build(kind: str, method: str):
    """A tiny model (init range 0.5 so greedy answers vary and sometimes end) with ``method`` applied and its
    tensors moved off their zero init, so every method really changes the answers."""
    model, tok = tiny_model(kind, initializer_range=0.5)
    if method != "base":
        cfg = {"lora": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules=TARGETS[kind]),
               "merged": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules=TARGETS[kind]),
               "dora": LoRAConfig(r=4, alpha=8, dropout=0.0, target_modules=TARGETS[kind], use_dora=True),
               "adapter": AdapterConfig(bottleneck=8, placement=("attn", "mlp")),
               "prefix": PrefixConfig(num_virtual_tokens=4, projection_dim=16)}[method]
        apply_peft(model, cfg)
        gen = torch.Generator().manual_seed(1)
        with torch.no_grad():
            for name in method_parameter_names(model):
                p = model.get_parameter(name)
                p.add_(torch.randn(p.shape, generator=gen) * 0.3)
        if method == "merged":
            model = merge_lora(model)
    model.eval()
    return model, tok


def render(tok, messages: list[dict]) -> list[int]:
    """Chat-template ids with the assistant generation prompt."""
    text = tok.apply_chat_template(messages, add_generation_prompt=True, tokenize=False)
    return tok(text, add_special_tokens=False)["input_ids"]


def chat_prompts(tok, questions=QUESTIONS) -> list[list[int]]:
    """One prompt per question, all with the same system prompt (so they share a prefix)."""
    return [render(tok, [{"role": "system", "content": SYSTEM}, {"role": "user", "content": q}]) for q in questions]


@torch.no_grad()
def hf_greedy(model, prompt: list[int], limit: int, ends: list[int], pad: int, **extra) -> tuple[list[int], bool]:
    """HF ``generate(do_sample=False)`` on the prompt alone: (tokens before the end token, ended)."""
    out = model.generate(torch.tensor([prompt]), attention_mask=torch.ones(1, len(prompt), dtype=torch.long),
                         max_new_tokens=limit, do_sample=False, temperature=None, top_p=None, top_k=None,
                         eos_token_id=ends, pad_token_id=pad, **extra)
    new = out[0, len(prompt):].tolist()
    for n, t in enumerate(new):
        if t in ends:
            return new[:n], True
    return new, False
