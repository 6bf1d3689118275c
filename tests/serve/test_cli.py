"""The serve verb's exit codes, and a real background server started and stopped through core.jobs."""
from __future__ import annotations

import socket
import subprocess
import sys
import time

import openai
import pytest

from core import jobs
from core.__main__ import main
from core.errors import UserError
from core.serve import server_status, start_server, stop_server, wait_ready
from core.serve.control import serve_dir
from tests.serve.conftest import RUN_ID, make_serve_run
from tests.training.conftest import ROOT, core_env


def serve(*args, timeout=120):
    return subprocess.run([sys.executable, "-m", "core", "serve", *args], cwd=ROOT, env=core_env(),
                          capture_output=True, text=True, timeout=timeout)


def test_bad_run_id_exits_2():
    out = serve("no-such-run", "--port", "0")
    assert out.returncode == 2 and "There is no run 'no-such-run'" in out.stderr and "Traceback" not in out.stderr


def test_taken_port_and_bad_host_exit_2(tmp_path, capsys):
    """In process (the checks come before any model loads): each is exit 2 with a message, not a traceback."""
    make_serve_run(tmp_path)
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen(1)
        assert main(["serve", RUN_ID, "--port", str(busy.getsockname()[1])]) == 2
    assert "Cannot listen on 127.0.0.1" in capsys.readouterr().err
    assert main(["serve", RUN_ID, "--host", "localhost.invalid", "--port", "0"]) == 2
    assert "--host must be an IP address" in capsys.readouterr().err
    assert main(["serve", RUN_ID, "--port", "70000"]) == 2
    assert "--port must be between" in capsys.readouterr().err


def test_start_and_stop_a_background_server(tmp_path):
    make_serve_run(tmp_path)
    assert server_status(RUN_ID)["running"] is False
    job = start_server(RUN_ID, port=0, api_key="bg-key")
    try:
        status = wait_ready(RUN_ID, timeout=180)
        assert status["running"] and status["auth"] and status["url"].startswith("http://127.0.0.1:")
        assert "bg-key" not in " ".join(job["args"])  # the key travels in the environment, not on argv
        with pytest.raises(UserError, match="already being served"):
            start_server(RUN_ID, port=0)
        client = openai.OpenAI(base_url=status["url"], api_key="bg-key", max_retries=0, timeout=60)
        assert [m.id for m in client.models.list().data] == [RUN_ID]
        out = client.chat.completions.create(model=RUN_ID, messages=[{"role": "user", "content": "hi"}],
                                             max_tokens=4, temperature=0)
        assert out.usage.completion_tokens >= 1
        with pytest.raises(openai.AuthenticationError):
            openai.OpenAI(base_url=status["url"], api_key="nope", max_retries=0).models.list()
    finally:
        began = time.monotonic()
        stopped = stop_server(RUN_ID, timeout=10)
    assert stopped and not jobs.alive(job)
    assert time.monotonic() - began < 8  # SIGTERM was enough: the SIGKILL fallback comes only after 10 s
    assert server_status(RUN_ID)["running"] is False and stop_server(RUN_ID) is False
    port = int(status["url"].rsplit(":", 1)[1].split("/")[0])
    with pytest.raises(OSError):
        socket.create_connection(("127.0.0.1", port), timeout=2).close()
    assert (serve_dir(RUN_ID) / "serve.log").exists()


def test_start_server_unknown_run_is_a_user_error():
    with pytest.raises(UserError, match="no run"):
        start_server("missing-run")


def test_load_engine_base_and_merged(tmp_path):
    """--base answers with the base model under its own id; --merged answers as the unmerged run does."""
    from core import chat
    from core.serve.cli import load_engine
    from tests.serve.conftest import SYSTEM

    make_serve_run(tmp_path)
    msgs = chat.build_messages(SYSTEM, [], "Where is my card?")
    tuned, base, merged = (load_engine(RUN_ID, **kw) for kw in ({}, {"base": True}, {"merged": True}))
    assert (tuned.model_id, base.model_id, merged.model_id) == (RUN_ID, f"{RUN_ID}:base", RUN_ID)
    assert tuned.system_prompt == base.system_prompt == SYSTEM
    answer = {name: chat.generate(e.model, e.tok, msgs, max_new_tokens=10)
              for name, e in (("tuned", tuned), ("base", base), ("merged", merged))}
    assert answer["merged"] == answer["tuned"] != answer["base"]
