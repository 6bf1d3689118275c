"""Sampled decoding, repetition penalty, stop strings and streaming."""
from __future__ import annotations

import pytest
import torch

from core.decoding import ChatSession, Decoder, SamplingParams
from core.decoding.sampling import filter_top_k_top_p
from tests.decoding.helpers import KINDS, SYSTEM, build, chat_prompts, hf_greedy


@pytest.mark.parametrize("kind", KINDS)
def test_sampling_is_reproducible_with_a_seed(kind):
    model, tok = build(kind, "lora")
    prompts = chat_prompts(tok)[:3]
    dec = Decoder(model, tok)
    params = dict(max_new_tokens=12, do_sample=True, temperature=1.5, top_p=0.95, top_k=50)
    first = dec.generate(prompts, SamplingParams(seed=7, **params), batch_size=2)
    again = dec.generate(prompts, SamplingParams(seed=7, **params), batch_size=2)
    other = dec.generate(prompts, SamplingParams(seed=8, **params), batch_size=2)
    greedy = dec.generate(prompts, SamplingParams(max_new_tokens=12), batch_size=2)
    assert [a.token_ids for a in first] == [a.token_ids for a in again]
    assert [a.token_ids for a in first] != [a.token_ids for a in other]
    assert [a.token_ids for a in first] != [a.token_ids for a in greedy]
    state = torch.random.get_rng_state()
    dec.generate(prompts[:1], SamplingParams(seed=7, **params))
    assert torch.equal(state, torch.random.get_rng_state())  # a private generator: the global RNG is untouched


@pytest.mark.parametrize("kind", KINDS)
def test_top_k_one_and_tiny_top_p_sample_the_greedy_answer(kind):
    model, tok = build(kind, "base")
    prompts = chat_prompts(tok)[:2]
    dec = Decoder(model, tok)
    greedy = [a.token_ids for a in dec.generate(prompts, SamplingParams(max_new_tokens=10))]
    for params in (dict(top_k=1), dict(top_p=1e-6)):
        sampled = dec.generate(prompts, SamplingParams(max_new_tokens=10, do_sample=True, temperature=2.0, **params))
        assert [a.token_ids for a in sampled] == greedy


def test_top_p_keeps_the_smallest_nucleus():
    logits = torch.tensor([[0.0, 1.0, 2.0, 3.0]]).log_softmax(-1)  # probs ~ .03 .09 .24 .64
    kept = torch.isfinite(filter_top_k_top_p(logits, 0, 0.8))
    assert kept.tolist() == [[False, False, True, True]]
    kept = torch.isfinite(filter_top_k_top_p(logits, 2, 1.0))
    assert kept.tolist() == [[False, False, True, True]]


@pytest.mark.parametrize("kind", KINDS)
def test_repetition_penalty_greedy_matches_hf(kind):
    model, tok = build(kind, "adapter")
    prompts = chat_prompts(tok)[:3]
    dec = Decoder(model, tok)
    answers = dec.generate(prompts, SamplingParams(max_new_tokens=12, repetition_penalty=1.8), batch_size=3)
    plain = dec.generate(prompts, SamplingParams(max_new_tokens=12), batch_size=3)
    assert [a.token_ids for a in answers] != [a.token_ids for a in plain]
    for p, a in zip(prompts, answers):
        assert a.token_ids == hf_greedy(model, p, 12, dec.ends, dec.pad, repetition_penalty=1.8)[0]


@pytest.mark.parametrize("kind", KINDS)
def test_stop_strings_cut_the_answer_before_the_stop(kind):
    model, tok = build(kind, "base")
    prompt = chat_prompts(tok)[3]
    dec = Decoder(model, tok)
    full = dec.generate([prompt], SamplingParams(max_new_tokens=16))[0]
    assert len(full.text) >= 8
    stop = full.text[4:6]
    cut = full.text[:full.text.find(stop)]
    params = SamplingParams(max_new_tokens=16, stop_strings=("never-there", stop))
    answer = dec.generate([prompt], params)[0]
    assert answer.text == cut and answer.finished
    assert answer.token_ids == full.token_ids[:answer.n_tokens]  # decoding stopped at the token completing it
    assert stop in tok.decode(answer.token_ids) and stop not in tok.decode(answer.token_ids[:-1])
    deltas = list(dec.stream(prompt, params))
    assert "".join(deltas) == cut  # streaming never showed text of (or after) the stop string


@pytest.mark.parametrize("kind", KINDS)
def test_stream_deltas_join_to_the_answer(kind):
    model, tok = build(kind, "prefix")
    prompt = chat_prompts(tok)[1]
    dec = Decoder(model, tok)
    answer = dec.generate([prompt], SamplingParams(max_new_tokens=20))[0]
    deltas = list(dec.stream(prompt, SamplingParams(max_new_tokens=20)))
    assert len(deltas) >= 2 and "".join(deltas) == answer.text
    session = ChatSession(model, tok, system_prompt=SYSTEM, params=SamplingParams(max_new_tokens=20))
    assert "".join(session.stream("where is my order #123?")) == answer.text  # chat_prompts(...)[1]'s question
    assert session.messages[-1] == {"role": "assistant", "content": answer.text}


def test_max_new_tokens_counts_the_end_token_as_hf_does():
    model, tok = build("tiny-gpt2", "base")
    dec = Decoder(model, tok)
    prompts = chat_prompts(tok)
    answers = dec.generate(prompts, SamplingParams(max_new_tokens=30), batch_size=3)
    ended = [a for a in answers if a.finished]
    assert ended, "this tiny model ends some answers within 30 tokens"
    for p, a in zip(prompts, answers):
        assert a.n_tokens <= 30 and (a.finished or a.n_tokens == 30)
        assert (a.token_ids, a.finished) == hf_greedy(model, p, 30, dec.ends, dec.pad)
