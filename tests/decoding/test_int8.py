"""Int8 "fast answers": an int8 copy that decodes with our decoder for every method, the caller's model untouched."""
from __future__ import annotations

import pytest
import torch
import torch.nn as nn

from core.decoding import Decoder, SamplingParams, quantize_for_chat
from core.peft import LoRALinear
from tests.decoding.helpers import KINDS, build, chat_prompts


@torch.no_grad()
def _last_logits(model, ids: list[int]) -> torch.Tensor:
    return model(torch.tensor([ids])).logits[0, -1]


@pytest.mark.parametrize("kind,method", [(k, m) for k in KINDS for m in ("base", "lora", "dora", "adapter", "prefix")])
def test_int8_copy_is_quantized_close_and_leaves_the_model_alone(kind, method):
    model, tok = build(kind, method)
    prompt = chat_prompts(tok)[1]
    before = _last_logits(model, prompt)
    fast = quantize_for_chat(model)
    quantized = [m for m in fast.modules() if type(m).__name__ == "Linear" and "quantized" in type(m).__module__]
    assert quantized, "no layer was quantized"
    assert not any(type(m) is nn.Linear for m in fast.modules())  # every float linear became int8
    assert not any(isinstance(m, LoRALinear) for m in fast.modules())  # LoRA merged into the copy first
    assert torch.equal(_last_logits(model, prompt), before)  # the caller's model is untouched
    if method in ("lora", "dora"):
        assert any(isinstance(m, LoRALinear) for m in model.modules())  # merged in the copy only
    after = _last_logits(fast, prompt)
    # int8 weights move the logits (these tiny models' large random weights and activations quantize coarsely),
    # not to something else: a broken quantization (wrong scale, garbage weights) correlates near 0
    assert torch.nn.functional.cosine_similarity(after, before, dim=0) > 0.9
    answers = Decoder(fast, tok).generate(chat_prompts(tok)[:3], SamplingParams(max_new_tokens=6), batch_size=2)
    assert all(a.n_tokens > 0 or a.finished for a in answers)


def test_int8_greedy_answers_mostly_agree_on_a_tiny_llama():
    model, tok = build("tiny-llama", "lora")
    prompts = chat_prompts(tok)
    params = SamplingParams(max_new_tokens=4)
    ref = [a.token_ids for a in Decoder(model, tok).generate(prompts, params, batch_size=3)]
    fast = [a.token_ids for a in Decoder(quantize_for_chat(model), tok).generate(prompts, params, batch_size=3)]
    assert sum(a[:1] == b[:1] for a, b in zip(ref, fast)) >= len(prompts) - 1  # first tokens agree
