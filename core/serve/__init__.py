"""An OpenAI-compatible HTTP server for a run (``python -m core serve``), and its background control.

    from core.serve import start_server, server_status, stop_server
    start_server(run_id, port=8000, api_key=None)   # a background `python -m core serve` (core.jobs)
    server_status(run_id)   # {"running", "ready", "url", "pid", "auth", "base", "merged", "log_tail"}
    stop_server(run_id)

Heavy imports (torch, starlette) happen in the submodules, so importing this package stays cheap.
"""
from core.serve.control import server_status, start_server, stop_server, wait_ready

__all__ = ["start_server", "stop_server", "server_status", "wait_ready"]
