"""Greedy answers of our decoder are token-for-token HF ``generate(do_sample=False)``'s, for every method."""
from __future__ import annotations

import pytest

from core.decoding import ChatSession, Decoder, SamplingParams, shared_prefix
from tests.decoding.helpers import KINDS, METHODS, SYSTEM, build, chat_prompts, hf_greedy, render

CASES = [(k, m) for k in KINDS for m in METHODS]


@pytest.mark.parametrize("kind,method", CASES)
def test_batched_shared_prefix_matches_hf(kind, method):
    model, tok = build(kind, method)
    prompts = chat_prompts(tok)[:4]
    dec = Decoder(model, tok)
    answers = dec.generate(prompts, SamplingParams(max_new_tokens=10), batch_size=4)
    system = tok.apply_chat_template([{"role": "system", "content": SYSTEM}], tokenize=False)
    assert shared_prefix(prompts) >= len(tok(system, add_special_tokens=False)["input_ids"])  # system turn shared
    for p, a in zip(prompts, answers):
        ref, ended = hf_greedy(model, p, 10, dec.ends, dec.pad)
        assert a.token_ids == ref and a.n_tokens == len(ref) and a.finished == ended
        assert a.text == tok.decode(ref, skip_special_tokens=True)
    assert any(len(a.token_ids) >= 5 for a in answers)  # the comparison covered real answers


@pytest.mark.parametrize("kind", KINDS)
def test_shared_prefix_is_computed_once(kind):
    model, tok = build(kind, "base")
    prompts = chat_prompts(tok)[:4]
    dec = Decoder(model, tok)
    dec.generate(prompts, SamplingParams(max_new_tokens=1), batch_size=4)
    n = shared_prefix(prompts)
    widest = max(len(p) - n for p in prompts)
    # one 1-row prefill of the prefix, then one left-padded prefill of the 4 suffixes, nothing else
    assert dec.runner.forward_tokens == n + 4 * widest
    assert dec.runner.forward_tokens < sum(map(len, prompts))


@pytest.mark.parametrize("kind,method", CASES)
def test_continuous_batching_matches_hf(kind, method):
    model, tok = build(kind, method)
    prompts = chat_prompts(tok)
    dec = Decoder(model, tok)
    # an extra end token that the second prompt's answer produces early, so one row ends by "end token" too
    free, _ = hf_greedy(model, prompts[1], 12, dec.ends, dec.pad)
    extra = free[3]
    ends = dec.ends + [extra]
    limits = [3, 12, 1, 7, 12, 5]
    events = []
    answers = [None] * len(prompts)
    for row in dec.events(prompts, SamplingParams(max_new_tokens=12, stop_token_ids=(extra,)), 2, limits):
        events.append(row.index)
        if row.done:
            answers[row.index] = row.answer()
    for p, a, limit in zip(prompts, answers, limits):
        ref, ended = hf_greedy(model, p, limit, ends, dec.pad)
        assert a.token_ids == ref and a.finished == ended
    assert answers[1].finished and answers[1].n_tokens <= 3


def test_a_finished_row_leaves_and_the_next_prompt_takes_its_slot():
    model, tok = build("tiny-llama", "base")
    prompts = chat_prompts(tok)[:4]
    dec = Decoder(model, tok, end_ids=[-1])  # no end token: rows end exactly at their limits
    events = [row.index for row in dec.events(prompts, SamplingParams(), 2, limits=[2, 9, 3, 4])]
    # admit 0 and 1; one step, 0 is done after 2 tokens and leaves; 2 is admitted while 1 keeps decoding
    assert events[:7] == [0, 1, 0, 1, 2, 1, 2]
    assert sorted(events) == [0] * 2 + [1] * 9 + [2] * 3 + [3] * 4
    tokens_per_prompt = [2, 9, 3, 4]
    assert [len(a.token_ids) for a in dec.generate(prompts, SamplingParams(), 2, tokens_per_prompt)] == \
        tokens_per_prompt


@pytest.mark.parametrize("kind", KINDS)
def test_continuous_batching_without_a_shared_prefix(kind):
    model, tok = build(kind, "prefix")
    prompts = [tok(text)["input_ids"] for text in ("hello there", "zebra", "a much longer third prompt")]
    assert shared_prefix(prompts) == 0
    dec = Decoder(model, tok)
    answers = dec.generate(prompts, SamplingParams(max_new_tokens=8), batch_size=2, limits=[8, 2, 6])
    for p, a, limit in zip(prompts, answers, [8, 2, 6]):
        assert a.token_ids == hf_greedy(model, p, limit, dec.ends, dec.pad)[0]


@pytest.mark.parametrize("kind,method", CASES)
def test_chat_session_three_turns_matches_hf_and_reuses_the_cache(kind, method):
    model, tok = build(kind, method)
    session = ChatSession(model, tok, system_prompt=SYSTEM, params=SamplingParams(max_new_tokens=8))
    prev_prompt: list[int] = []
    for turn, question in enumerate(("hi", "where is my order?", "thanks, and the refund?")):
        prompt = render(tok, session.messages + [{"role": "user", "content": question}])
        cached, before = list(session.ids), session.runner.forward_tokens
        answer = session.send(question)
        ref, _ = hf_greedy(model, prompt, 8, session.ends, tok.pad_token_id)
        assert answer == tok.decode(ref, skip_special_tokens=True)
        reused = next((i for i, (a, b) in enumerate(zip(cached, prompt)) if a != b), min(len(cached), len(prompt)))
        fed_after_prompt = len(session.ids) - len(prompt)
        # the turn ran exactly the tokens not already cached, then one token per decoding step
        assert session.runner.forward_tokens - before == len(prompt) - reused + fed_after_prompt
        if turn:
            assert reused >= len(prev_prompt)  # the whole previous prompt (and the answer's tokens) came from cache
        prev_prompt = prompt
    assert [m["role"] for m in session.messages] == ["system"] + ["user", "assistant"] * 3


@pytest.mark.parametrize("kind", KINDS)
def test_the_evaluation_answers_are_hf_greedy_answers(kind):
    from core.evaluation.generation import Decoding, generate_batch

    model, tok = build(kind, "dora")
    prompts = chat_prompts(tok)
    decoding = Decoding(max_new_tokens=9, batch_size=3)
    seen = []
    ours = generate_batch(model, tok, prompts, decoding, progress=lambda f, label: seen.append(f))
    dec = Decoder(model, tok)
    for p, a in zip(prompts, ours):
        ref, ended = hf_greedy(model, p, 9, dec.ends, dec.pad)
        assert (a.text, a.n_tokens, a.finished) == (tok.decode(ref, skip_special_tokens=True), len(ref), ended)
    assert seen[-1] == 1.0 and len(seen) == len(prompts)
