"""Refusals: malformed requests get a 4xx in OpenAI's error shape, a server with a key refuses other keys."""
from __future__ import annotations

import openai
import pytest

from core.serve.schema import MAX_BODY_BYTES, MAX_MESSAGES, MAX_TOKENS_LIMIT
from tests.serve.conftest import RUN_ID, LiveServer, make_engine

USER = [{"role": "user", "content": "hi"}]


def ok(**kw):
    return {"model": RUN_ID, "messages": USER, "max_tokens": 2, **kw}


MALFORMED = {
    "bad JSON": (b'{"model": "serve-run", "messages": [', 400, "not valid JSON"),
    "not an object": ([1, 2], 400, "JSON object"),
    "no messages": ({"model": RUN_ID}, 400, "messages"),
    "empty messages": (ok(messages=[]), 400, "non-empty"),
    "unknown role": (ok(messages=[{"role": "wizard", "content": "hi"}]), 400, "role"),
    "content not text": (ok(messages=[{"role": "user", "content": 5}]), 400, "must be a string"),
    "temperature a string": (ok(temperature="hot"), 400, "temperature"),
    "temperature too high": (ok(temperature=5), 400, "temperature"),
    "max_tokens zero": (ok(max_tokens=0), 400, "max_tokens"),
    "max_tokens too large": (ok(max_tokens=MAX_TOKENS_LIMIT + 1), 400, "max_tokens"),
    "too many messages": (ok(messages=USER * (MAX_MESSAGES + 1)), 400, f"at most {MAX_MESSAGES}"),
    "body too large": (b"{" + b" " * MAX_BODY_BYTES + b"}", 413, "larger than"),
    "unknown model": (ok(model="gpt-4"), 404, "does not exist"),
    "stop not strings": (ok(stop=[1]), 400, "stop"),
    "n above one": (ok(n=2), 400, "'n'"),
    "top_p zero": (ok(top_p=0), 400, "top_p"),
    "prompt over the context": (ok(messages=[{"role": "user", "content": "x" * 5000}]), 400, "context"),
}


def assert_openai_error(status, body, want_status, want_text):
    assert status == want_status, body
    err = body["error"]
    assert set(err) == {"message", "type", "param", "code"}
    assert want_text in err["message"] and "Traceback" not in err["message"]


@pytest.mark.parametrize("case", list(MALFORMED))
def test_malformed_request_gets_4xx_with_message(live, case):
    body, status, text = MALFORMED[case]
    assert_openai_error(*live.raw("POST", "/v1/chat/completions", body), status, text)


def test_wrong_route_and_method_are_openai_errors(live):
    assert_openai_error(*live.raw("GET", "/v1/nothing"), 404, "no route")
    assert_openai_error(*live.raw("GET", "/v1/chat/completions"), 405, "not allowed")
    status, body = live.raw("POST", "/v1/chat/completions", ok())
    assert status == 200 and body["choices"][0]["message"]["role"] == "assistant"  # the bounds refuse no good one


def test_unknown_role_through_the_client_is_a_bad_request(live):
    c = openai.OpenAI(base_url=live.url, api_key="x", max_retries=0)
    with pytest.raises(openai.BadRequestError, match="role"):
        c.chat.completions.create(model=RUN_ID, messages=[{"role": "tool", "content": "x", "tool_call_id": "1"}])


@pytest.fixture(scope="module")
def keyed(loaded):
    server = LiveServer(make_engine(loaded), api_key="s3cret-key")
    yield server
    server.close()


def test_api_key_required_when_set(keyed):
    def client(key):
        return openai.OpenAI(base_url=keyed.url, api_key=key, max_retries=0)

    for key in ("wrong-key", "s3cret-ke"):
        with pytest.raises(openai.AuthenticationError) as info:
            client(key).models.list()
        assert info.value.status_code == 401 and info.value.body["code"] == "invalid_api_key"
    with pytest.raises(openai.AuthenticationError):
        client("wrong").chat.completions.create(model=RUN_ID, messages=USER, max_tokens=2)
    assert_openai_error(*keyed.raw("GET", "/v1/models"), 401, "No API key")
    assert_openai_error(*keyed.raw("POST", "/v1/chat/completions", ok(), {"Authorization": "Basic s3cret-key"}),
                        401, "API key")
    assert [m.id for m in client("s3cret-key").models.list().data] == [RUN_ID]
    out = client("s3cret-key").chat.completions.create(model=RUN_ID, messages=USER, max_tokens=2, temperature=0)
    assert out.usage.completion_tokens >= 1


def test_chunked_body_over_the_limit_is_413(live):
    """No Content-Length to trust: the body is counted as it arrives and refused once it passes the bound."""
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    chunks = (b" " * 65536 for _ in range(MAX_BODY_BYTES // 65536 + 2))
    conn.request("POST", "/v1/chat/completions", body=chunks, encode_chunked=True,
                 headers={"Content-Type": "application/json", "Transfer-Encoding": "chunked"})
    resp = conn.getresponse()
    body = json.loads(resp.read())
    conn.close()
    assert_openai_error(resp.status, body, 413, "larger than")


def test_client_leaving_mid_stream_does_not_hurt_the_server(live):
    import http.client
    import json

    conn = http.client.HTTPConnection("127.0.0.1", live.port, timeout=60)
    conn.request("POST", "/v1/chat/completions", json.dumps(ok(stream=True, max_tokens=600, temperature=0)),
                 {"Content-Type": "application/json"})
    resp = conn.getresponse()
    assert resp.status == 200 and resp.readline().startswith(b"data: ")
    conn.close()  # gone after the first event
    status, body = live.raw("POST", "/v1/chat/completions", ok(temperature=0))
    assert status == 200 and body["usage"]["completion_tokens"] >= 1
