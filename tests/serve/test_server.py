"""The server through the official openai client: answers equal core.chat's greedy answers, streaming, batching."""
from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor

import openai

from core import chat
from core.decoding import SamplingParams
from tests.serve.conftest import RUN_ID, SYSTEM, make_engine

PROMPTS = ["Where is my card?", "My PIN is blocked", "Rate for GBP?", "讲个故事", "hello", "When will it come?",
           "Unblock my PIN please", "a"]


def client(live, key="unused"):
    return openai.OpenAI(base_url=live.url, api_key=key, max_retries=0, timeout=120)


def reference(loaded, prompt, n, system=SYSTEM):
    model, tok, _ = loaded
    return chat.generate(model, tok, chat.build_messages(system, [], prompt), max_new_tokens=n)


def test_models_lists_the_run(live):
    models = client(live).models.list()
    assert [m.id for m in models.data] == [RUN_ID]


def test_non_streaming_equals_chat_greedy_answer(live, loaded):
    out = client(live).chat.completions.create(model=RUN_ID, messages=[{"role": "user", "content": PROMPTS[0]}],
                                               temperature=0, max_tokens=12)
    want = reference(loaded, PROMPTS[0], 12)
    assert len(want) >= 5  # a real answer, not an empty one both sides agree on
    assert out.object == "chat.completion" and out.model == RUN_ID
    assert out.choices[0].message.role == "assistant" and out.choices[0].message.content == want
    _, tok, _ = loaded
    rendered = tok(tok.apply_chat_template(chat.build_messages(SYSTEM, [], PROMPTS[0]), add_generation_prompt=True,
                                           tokenize=False), add_special_tokens=False)["input_ids"]
    assert out.usage.prompt_tokens == len(rendered)  # the run's system prompt was applied
    assert 0 < out.usage.completion_tokens <= 12
    assert out.usage.total_tokens == out.usage.prompt_tokens + out.usage.completion_tokens
    assert out.choices[0].finish_reason == ("length" if out.usage.completion_tokens == 12 else "stop")


def test_own_system_message_replaces_the_runs(live, loaded):
    msgs = [{"role": "system", "content": "Answer in French."}, {"role": "user", "content": "hello"}]
    out = client(live).chat.completions.create(model=RUN_ID, messages=msgs, temperature=0, max_tokens=10)
    assert out.choices[0].message.content == reference(loaded, "hello", 10, system="Answer in French.")
    assert out.choices[0].message.content != reference(loaded, "hello", 10)  # the system prompt matters


def test_streaming_equals_chat_greedy_answer(live, loaded):
    stream = client(live).chat.completions.create(
        model=RUN_ID, messages=[{"role": "user", "content": PROMPTS[1]}], temperature=0, max_tokens=16,
        stream=True, stream_options={"include_usage": True})
    chunks = list(stream)
    assert all(c.object == "chat.completion.chunk" for c in chunks)
    deltas = [c.choices[0].delta.content or "" for c in chunks if c.choices]
    assert "".join(deltas) == reference(loaded, PROMPTS[1], 16)
    assert sum(1 for d in deltas if d) >= 2  # really streamed, not one blob
    finishes = [c.choices[0].finish_reason for c in chunks if c.choices and c.choices[0].finish_reason]
    assert finishes in (["stop"], ["length"])
    assert chunks[-1].usage is not None and chunks[-1].usage.completion_tokens > 0


def test_stream_ends_with_done(live):
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps(
        {"model": RUN_ID, "messages": [{"role": "user", "content": "hi"}], "stream": True, "max_tokens": 4}),
        {"Content-Type": "application/json"})
    resp = conn.getresponse()
    text = resp.read().decode()
    assert resp.status == 200 and resp.getheader("content-type").startswith("text/event-stream")
    events = [e for e in text.split("\n\n") if e]
    assert all(e.startswith("data: ") for e in events) and events[-1] == "data: [DONE]"


def test_stop_string_and_seed(live, loaded):
    c = client(live)
    full = reference(loaded, PROMPTS[2], 20)
    at = next(i for i, ch in enumerate(full) if i >= 2 and ch.isascii() and ch.isalnum())
    stop = full[at]
    out = c.chat.completions.create(model=RUN_ID, messages=[{"role": "user", "content": PROMPTS[2]}],
                                    temperature=0, max_tokens=20, stop=[stop])
    assert out.choices[0].message.content == full[:full.find(stop)] and out.choices[0].finish_reason == "stop"
    kw = dict(model=RUN_ID, messages=[{"role": "user", "content": "hello"}], temperature=1.5, top_p=0.9,
              max_tokens=12)
    a, b = (c.chat.completions.create(seed=7, **kw).choices[0].message.content for _ in range(2))
    other = c.chat.completions.create(seed=8, **kw).choices[0].message.content
    assert a == b and a != other  # the same seed repeats; sampling really samples


def test_eight_concurrent_clients_all_get_their_answers(live, loaded):
    def ask(prompt, stream):
        kw = dict(model=RUN_ID, messages=[{"role": "user", "content": prompt}], temperature=0, max_tokens=10)
        if stream:
            return "".join(c.choices[0].delta.content or "" for c in client(live).chat.completions.create(
                stream=True, **kw) if c.choices)
        return client(live).chat.completions.create(**kw).choices[0].message.content

    before = len(live.engine.batches)
    with ThreadPoolExecutor(8) as pool:
        answers = list(pool.map(ask, PROMPTS, [i % 2 == 0 for i in range(8)]))
    assert answers == [reference(loaded, p, 10) for p in PROMPTS]
    assert len(set(answers)) >= 6  # different prompts, different answers: nothing was mixed up between clients
    assert sum(live.engine.batches[before:]) == 8


def test_waiting_jobs_decode_as_one_batch(loaded):
    """Jobs queued while the worker is busy share one batch; a seeded sampled job runs alone."""
    engine = make_engine(loaded)

    async def scenario():
        await engine.start()
        jobs = [await engine.submit(engine.render([{"role": "user", "content": p}]), SamplingParams(max_new_tokens=6))
                for p in PROMPTS[:5]]
        seeded = await engine.submit(engine.render([{"role": "user", "content": "x"}]),
                                     SamplingParams(max_new_tokens=6, do_sample=True, seed=3), seeded=True)
        answers = []
        for job in jobs + [seeded]:
            while (event := await job.events.get())[0] == "delta":
                pass
            answers.append(event[1].text)
        await engine.close()
        return answers

    answers = asyncio.run(scenario())
    assert engine.batches == [5, 1]
    assert answers[:5] == [reference(loaded, p, 6) for p in PROMPTS[:5]]
