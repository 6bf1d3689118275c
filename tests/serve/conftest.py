"""A real in-process server per test module: uvicorn on a free loopback port in a thread, over a tiny LoRA run."""
from __future__ import annotations

import http.client
import json
import os
import socket
import threading
import time

import pytest
import torch

RUN_ID = "serve-run"
SYSTEM = "Map codes."   # the run's system prompt


def make_serve_run(tmp, run_id: str = RUN_ID) -> str:
    """A completed LoRA run in the current workspace whose greedy answers vary with the prompt.

    Its base model is a tiny-llama with init range 0.5 saved to a folder (the default init answers every prompt
    with the same newlines, which would make "equals the reference" prove nothing), with a random non-zero LoRA.
    """
    from core.fileio import atomic_write_json
    from core.models import load_model, tiny_model
    from core.peft import LoRAConfig, apply_peft, save_adapter
    from core.workspace import run_dir

    base_dir = tmp / f"{run_id}-base"
    base, tok = tiny_model("tiny-llama", initializer_range=0.5)
    base.save_pretrained(base_dir)
    tok.save_pretrained(base_dir)
    model, _ = load_model(str(base_dir))
    apply_peft(model, LoRAConfig(r=4, alpha=8, target_modules=("q_proj", "v_proj")))
    gen = torch.Generator().manual_seed(0)
    with torch.no_grad():
        for p in model.parameters():
            if p.requires_grad:
                p.copy_(torch.randn(p.shape, generator=gen) * 0.3)
    folder = run_dir(run_id, create=True)
    atomic_write_json(folder / "config.json", {"model": str(base_dir), "method": "lora", "system_prompt": SYSTEM,
                                               "train": {"seed": 1}})
    save_adapter(model, folder / "adapter")
    return run_id


class LiveServer:
    """A running server: its engine (model, tok), base URL and a raw-request helper."""

    def __init__(self, engine, api_key=None):
        import uvicorn

        from core.serve.app import build_app
        from core.serve.cli import bind

        self.engine, self.sock = engine, bind("127.0.0.1", 0)
        self.port = self.sock.getsockname()[1]
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.server = uvicorn.Server(uvicorn.Config(build_app(engine, api_key), log_level="warning"))
        self.thread = threading.Thread(target=self.server.run, kwargs={"sockets": [self.sock]}, daemon=True)
        self.thread.start()
        end = time.time() + 30
        while not self.server.started:
            assert time.time() < end and self.thread.is_alive(), "the server did not start"
            time.sleep(0.02)

    def close(self) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)
        self.sock.close()

    def raw(self, method: str, path: str, body=None, headers=None):
        """(status, parsed JSON or text) of one raw HTTP request."""
        conn = http.client.HTTPConnection("127.0.0.1", self.port, timeout=60)
        data = body if isinstance(body, (bytes, type(None))) else json.dumps(body).encode()
        conn.request(method, path, body=data, headers={"Content-Type": "application/json", **(headers or {})})
        resp = conn.getresponse()
        text = resp.read().decode()
        conn.close()
        try:
            return resp.status, json.loads(text)
        except json.JSONDecodeError:
            return resp.status, text


@pytest.fixture(scope="module")
def loaded(tmp_path_factory):
    """(model, tok, cfg) of a tiny LoRA run: the same weights `python -m core serve` would load."""
    from core.chat import load_run_model

    old_threads, old_home = torch.get_num_threads(), os.environ.get("ASSISTANT_FACTORY_HOME")
    torch.set_num_threads(1)  # tiny models: one thread is fastest and spares the shared CPU
    tmp = tmp_path_factory.mktemp("serve")
    os.environ["ASSISTANT_FACTORY_HOME"] = str(tmp / "workspace")
    try:
        make_serve_run(tmp)
        yield load_run_model(RUN_ID)
    finally:
        torch.set_num_threads(old_threads)
        if old_home is None:
            os.environ.pop("ASSISTANT_FACTORY_HOME", None)
        else:
            os.environ["ASSISTANT_FACTORY_HOME"] = old_home


def make_engine(loaded, **kw):
    from core.serve.batching import Engine

    model, tok, cfg = loaded
    return Engine(model, tok, model_id=RUN_ID, system_prompt=cfg.get("system_prompt"), **kw)


@pytest.fixture(scope="module")
def live(loaded):
    server = LiveServer(make_engine(loaded))
    yield server
    server.close()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]
