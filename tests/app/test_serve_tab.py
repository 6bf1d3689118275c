"""Page 8's Serve tab (AppTest) over a real background `python -m core serve` of a tiny LoRA run."""
from __future__ import annotations

import json
import socket
import time
import urllib.request

import pytest

from core.serve import server_status, stop_server, wait_ready
from core.serve.control import serve_dir
from tests.app.conftest import open_page, texts, write_project
from tests.e2e.helpers import free_port
from tests.serve.conftest import RUN_ID, make_serve_run
from ui.i18n import t
from ui.serveview import KEY_PLACEHOLDER, NO_KEY, snippets


@pytest.fixture
def serve_run(workspace, tmp_path):
    """A completed tiny LoRA run, active in the project; any server it gets is stopped afterwards."""
    make_serve_run(tmp_path)
    write_project(workspace, active_run=RUN_ID)
    yield RUN_ID
    stop_server(RUN_ID)


def _ask(url: str, key: str | None) -> dict:
    body = json.dumps({"model": RUN_ID, "messages": [{"role": "user", "content": "hi"}], "max_tokens": 4,
                       "temperature": 0}).encode()
    headers = {"Content-Type": "application/json", **({"Authorization": f"Bearer {key}"} if key else {})}
    req = urllib.request.Request(f"{url}/chat/completions", data=body, headers=headers)
    with urllib.request.urlopen(req, timeout=120) as resp:
        return json.loads(resp.read())


def _settle(at, state: str, tries: int = 600):
    """Rerun the page until the server reaches ``state`` (the model loads in the server's own process)."""
    for _ in range(tries):
        if server_status(RUN_ID)["state"] == state:
            return at.run(timeout=60)
        time.sleep(0.3)
    raise AssertionError(f"the server never became {state}: {server_status(RUN_ID)}")


def test_snippets_are_copy_ready():
    code = snippets("http://127.0.0.1:8123/v1", "my-run", "af-secret", auth=True)
    assert "curl http://127.0.0.1:8123/v1/chat/completions" in code["curl"]
    assert 'Bearer af-secret' in code["curl"] and '"model": "my-run"' in code["curl"]
    assert "base_url='http://127.0.0.1:8123/v1'" in code["python"] and "api_key='af-secret'" in code["python"]
    assert "model='my-run'" in code["python"] and "messages=" in code["python"]
    compile(code["python"], "snippet", "exec")  # valid Python as shown
    assert code["env"] == "OPENAI_BASE_URL=http://127.0.0.1:8123/v1\nOPENAI_API_KEY=af-secret"
    assert KEY_PLACEHOLDER in snippets("u", "m", None, auth=True)["env"]
    open_code = snippets("u", "m", None, auth=False)
    assert "Authorization" not in open_code["curl"] and NO_KEY in open_code["env"]


def test_serve_tab_starts_calls_and_stops_a_server_with_a_generated_key(serve_run):
    at = open_page("8_chat_export")
    assert t("chat.tab_serve") in texts(at)
    at.button(key="serve_genkey").click().run()
    key = at.text_input(key=f"serve_key_{RUN_ID}").value
    assert key.startswith("af-") and len(key) > 20
    at.number_input(key="serve_port").set_value(free_port())
    at.toggle(key="serve_merged").set_value(True)
    at.button(key="serve_start").click().run()
    assert not at.exception
    assert server_status(RUN_ID)["state"] in ("starting", "running") and server_status(RUN_ID)["merged"]
    status = wait_ready(RUN_ID, timeout=300)
    at = _settle(at, "running")
    assert any(s.value == t("serve.running", url=status["url"], model=RUN_ID) for s in at.success)
    shown = "\n".join(c.value for c in at.code)
    assert status["url"] in shown and f"OPENAI_API_KEY={key}" in shown
    assert _ask(status["url"], key)["choices"][0]["message"]["role"] == "assistant"
    for path in serve_dir(RUN_ID).iterdir():  # the key is in no file: not the job record, log or status
        assert key not in path.read_text(errors="replace"), path
    at.session_state[f"serve_started_key_{RUN_ID}"] = "af-another-key"  # as if another session had started it
    at.run()
    shown = "\n".join(c.value for c in at.code)
    assert f"OPENAI_API_KEY={KEY_PLACEHOLDER}" in shown and "af-another-key" not in shown  # never a wrong key
    at.session_state[f"serve_started_key_{RUN_ID}"] = key
    at.button(key="serve_stop").click().run(timeout=60)
    assert not at.exception
    assert server_status(RUN_ID)["state"] == "stopped"
    assert any(i.value == t("serve.stopped") for i in at.info)
    assert at.button(key="serve_start")  # ready to start again


def test_a_server_that_cannot_start_shows_failed_and_its_log(serve_run):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen(1)
        at = open_page("8_chat_export", "zh")
        at.number_input(key="serve_port").set_value(taken.getsockname()[1])
        at.button(key="serve_start").click().run()
        at = _settle(at, "failed")
    assert any(e.value == t("serve.failed", "zh") for e in at.error)
    assert any("Cannot listen on" in c.value for c in at.code)
