"""In a real browser (Debian's Chromium, Playwright) against `streamlit run app.py`: page 8's Serve tab starts the
run's OpenAI-compatible server, the test calls it over HTTP, the browser closes and a fresh one finds the server
still running (a background job), then Stop ends it.

The run is a completed tiny LoRA run written directly (tests/serve/conftest.py), so no training is needed.
"""
from __future__ import annotations

import json
import os
import re
import socket
import urllib.request

import pytest

from tests.app.conftest import write_project
from tests.e2e.helpers import browser_page, free_port, go, idle, need_browser, streamlit_server
from tests.serve.conftest import RUN_ID, make_serve_run
from tests.training.conftest import wait_for

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(1200)]


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    """`streamlit run app.py` over a workspace holding one completed tiny run; stops any model server it left."""
    need_browser()
    tmp = tmp_path_factory.mktemp("e2e-serve")
    home = tmp / "workspace"
    old = os.environ.get("ASSISTANT_FACTORY_HOME")
    os.environ["ASSISTANT_FACTORY_HOME"] = str(home)
    try:
        make_serve_run(tmp)
        write_project(home, active_run=RUN_ID)
        with streamlit_server(home) as srv:
            yield srv
    finally:
        from core.serve import stop_server

        stop_server(RUN_ID)
        if old is None:
            os.environ.pop("ASSISTANT_FACTORY_HOME", None)
        else:
            os.environ["ASSISTANT_FACTORY_HOME"] = old


def _chat(url: str, key: str) -> dict:
    body = json.dumps({"model": RUN_ID, "messages": [{"role": "user", "content": "Where is my order?"}],
                       "max_tokens": 8, "temperature": 0}).encode()
    req = urllib.request.Request(f"{url}/chat/completions", data=body,
                                 headers={"Content-Type": "application/json", "Authorization": f"Bearer {key}"})
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def _serve_tab(page, server) -> None:
    go(page, server, "")  # a server's very first session landing on a deep link gets Streamlit's "Page not found"
    go(page, server, "chat-export")
    page.get_by_role("tab", name=re.compile("Serve")).click()
    idle(page)


def test_serve_tab_starts_a_server_that_answers_survives_the_browser_and_stops(server):
    from playwright.sync_api import expect

    port = free_port()
    with browser_page(height=1600) as page:
        _serve_tab(page, server)
        page.get_by_role("button", name=re.compile("Generate key")).click()
        idle(page)
        port_box = page.get_by_role("spinbutton", name="Port")
        port_box.fill(str(port))
        port_box.press("Enter")
        idle(page)
        page.get_by_role("button", name=re.compile("Start server")).click()
        url = f"http://127.0.0.1:{port}/v1"
        expect(page.get_by_text(f"Running at {url}")).to_be_visible(timeout=300_000)
        idle(page)
        env = page.get_by_test_id("stCode").filter(has_text="OPENAI_BASE_URL").inner_text()
        assert f"OPENAI_BASE_URL={url}" in env
        key = re.search(r"OPENAI_API_KEY=(\S+)", env)[1]
        assert key.startswith("af-")
        answer = _chat(url, key)
        assert answer["model"] == RUN_ID and answer["choices"][0]["message"]["role"] == "assistant"
        assert answer["usage"]["completion_tokens"] >= 1

    # the browser is gone; the server is not, and a new browser session finds it
    assert _chat(url, key)["choices"]
    with browser_page(height=1600) as page:
        _serve_tab(page, server)
        expect(page.get_by_text(f"Running at {url}")).to_be_visible()
        page.get_by_role("button", name=re.compile("Stop server")).click()
        expect(page.get_by_text("The server is stopped.")).to_be_visible(timeout=60_000)
        expect(page.get_by_role("button", name=re.compile("Start server"))).to_be_visible()

    def refused() -> bool:
        try:
            socket.create_connection(("127.0.0.1", port), timeout=2).close()
        except OSError:
            return True
        return False
    assert wait_for(refused, 30)
