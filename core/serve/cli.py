"""``python -m core serve RUN_ID [--host 127.0.0.1] [--port 8000] [--api-key KEY] [--merged] [--base]``.

Loads the run (or its base model) once, binds the socket itself (a port in use is a clear exit 2, not a traceback
from inside uvicorn), then serves until SIGTERM or Ctrl-C. With a status file (``--status-file``, used by
``core.serve.control.start_server``) it records the address it really listens on, so port 0 works.
"""
from __future__ import annotations

import ipaddress
import os
import socket
import sys
from typing import TYPE_CHECKING, Optional

from core.errors import UserError

if TYPE_CHECKING:
    from core.serve.batching import Engine

API_KEY_ENV = "ASSISTANT_FACTORY_API_KEY"
DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8000


def load_engine(run_id: str, base: bool = False, merged: bool = False) -> "Engine":
    """The Engine of a run's tuned model (or its base model), with the run's system prompt; UserError if unusable."""
    from core.chat import load_base_model, load_run_model, run_weights
    from core.serve.batching import Engine

    if base:
        model, tok, cfg = load_base_model(run_id)
        model.eval()
    else:
        weights = run_weights(run_id)
        if not weights.final:
            print(f"note: run {run_id} did not finish; serving its weights {weights.describe()}.", file=sys.stderr)
        model, tok, cfg = load_run_model(run_id, merged=merged)
    return Engine(model, tok, model_id=model_id(run_id, base), system_prompt=cfg.get("system_prompt"))


def model_id(run_id: str, base: bool = False) -> str:
    """The id clients pass as ``model``: the run id, with ``:base`` when the base model answers."""
    return f"{run_id}:base" if base else run_id


def bind(host: str, port: int) -> socket.socket:
    """A listening TCP socket on ``host:port`` (UserError when the address is bad or the port is taken)."""
    if not 0 <= port <= 65535:
        raise UserError(f"--port must be between 0 and 65535, got {port}.")
    try:
        family = socket.AF_INET6 if ipaddress.ip_address(host).version == 6 else socket.AF_INET
    except ValueError:
        raise UserError(f"--host must be an IP address such as 127.0.0.1, got {host!r}.") from None
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise UserError(f"Cannot listen on {host}:{port} ({exc.strerror}); choose another --port, or stop "
                        "what uses it.") from None
    sock.listen(128)
    sock.set_inheritable(True)
    return sock


def serve_command(args) -> int:
    """Serve a run over HTTP until stopped."""
    import uvicorn

    from core.serve.app import build_app

    api_key: Optional[str] = args.api_key or os.environ.get(API_KEY_ENV) or None
    sock = bind(args.host, args.port)  # before loading: a taken port fails in a second, not after the model loads
    engine = load_engine(args.run_id, base=args.base, merged=args.merged)
    host, port = sock.getsockname()[:2]
    url = f"http://{host if ':' not in host else f'[{host}]'}:{port}/v1"
    if not api_key and not ipaddress.ip_address(host).is_loopback:
        print(f"warning: listening on {host} without an API key: anyone who can reach it can use the model. "
              f"Set --api-key or {API_KEY_ENV}.", file=sys.stderr)
    if getattr(args, "status_file", None):
        from core.jobs import write_progress

        write_progress(args.status_file, "serving", 1.0, f"serving at {url}", url=url, host=host, port=port,
                       model=engine.model_id, auth=bool(api_key))
    print(f"Serving model '{engine.model_id}' at {url} (auth: {'on' if api_key else 'off'}). Ctrl-C stops.",
          file=sys.stderr, flush=True)
    config = uvicorn.Config(build_app(engine, api_key), log_level="warning", timeout_graceful_shutdown=5)
    uvicorn.Server(config).run(sockets=[sock])
    return 0
