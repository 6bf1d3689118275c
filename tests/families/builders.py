"""Tiny randomly initialised models of every supported decoder family, built from a config: never a download.

Each family keeps the feature that sets it apart (Llama-3 RoPE scaling, Qwen2's q/k/v bias, Qwen3's q/k norms,
Mistral's sliding window, Gemma's soft-capping, scaled embeddings and (1 + w) norms, Phi-3's fused projections,
GPT-2's Conv1D, GPT-NeoX's fused query_key_value), sized so a forward takes milliseconds. Sliding windows are
shorter than the test sequences, so a path that ignored the window would give other numbers.
"""
from __future__ import annotations

import torch

from core.models import tiny_tokenizer

WINDOW = 8  # sliding-window length: shorter than the test rows (40 tokens)
_COMMON = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
               num_key_value_heads=2, head_dim=16, max_position_embeddings=256, tie_word_embeddings=True)


def _llama(c):
    rope = {"rope_type": "llama3", "rope_theta": 10000.0, "factor": 8.0, "low_freq_factor": 1.0,
            "high_freq_factor": 4.0, "original_max_position_embeddings": 64}
    return c.LlamaConfig(**_COMMON, rope_parameters=rope)


def _qwen2(c):
    return c.Qwen2Config(**_COMMON)  # q, k and v carry a bias in Qwen2's attention


def _qwen3(c):
    return c.Qwen3Config(**_COMMON)


def _mistral(c):
    return c.MistralConfig(**_COMMON, sliding_window=WINDOW)


def _gemma2(c):
    return c.Gemma2Config(**_COMMON, sliding_window=WINDOW, final_logit_softcapping=5.0, attn_logit_softcapping=3.0,
                          query_pre_attn_scalar=16, layer_types=["sliding_attention", "full_attention"])


def _gemma3(c):
    return c.Gemma3TextConfig(**_COMMON, sliding_window=WINDOW, query_pre_attn_scalar=16,
                              layer_types=["sliding_attention", "full_attention"])


def _phi3(c):
    return c.Phi3Config(**{**_COMMON, "tie_word_embeddings": False}, pad_token_id=None)


def _gpt2(c):
    return c.GPT2Config(n_embd=64, n_layer=2, n_head=4, n_positions=256)


def _neox(c):
    return c.GPTNeoXConfig(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
                           max_position_embeddings=256, tie_word_embeddings=False)


BUILDERS = {"llama": _llama, "qwen2": _qwen2, "qwen3": _qwen3, "mistral": _mistral, "gemma2": _gemma2,
            "gemma3": _gemma3, "phi3": _phi3, "gpt2": _gpt2, "gpt_neox": _neox}
FAMILIES = tuple(BUILDERS)


def family_config(family: str):
    """The tiny config of ``family`` with the test tokenizer's vocabulary and special ids."""
    import transformers

    tok = tiny_tokenizer()
    config = BUILDERS[family](transformers)
    config.vocab_size = len(tok)
    config.bos_token_id, config.eos_token_id, config.pad_token_id = tok.bos_token_id, tok.eos_token_id, \
        tok.pad_token_id
    return config


def family_model(family: str, seed: int = 0, attn: str | None = None):
    """``(model, tokenizer)``: a randomly initialised tiny model of ``family``, the same weights for a seed."""
    from transformers import AutoModelForCausalLM

    config = family_config(family)
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(seed)
        # None: what from_pretrained would pick (sdpa where the family supports it; eager for Gemma 2)
        model = AutoModelForCausalLM.from_config(config, **({"attn_implementation": attn} if attn else {}))
        with torch.no_grad():  # random norms and biases, so a wrong (1 + w) or a dropped bias shows
            for name, p in model.named_parameters():
                if p.dim() == 1:
                    p.add_(0.1 * torch.randn_like(p))
    model.name_or_path = f"tiny-{family}"
    model.eval()
    return model, tiny_tokenizer()
