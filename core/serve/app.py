"""The OpenAI-compatible routes: ``GET /v1/models`` and ``POST /v1/chat/completions`` (plain and SSE streaming).

Every refusal is a 4xx in OpenAI's error shape; an unexpected failure is a 500 in the same shape, never a traceback
(the traceback goes to the server's log).
"""
from __future__ import annotations

import hmac
import json
import logging
import time
import uuid
from typing import AsyncIterator, Optional

from starlette.applications import Starlette
from starlette.exceptions import HTTPException
from starlette.requests import Request
from starlette.responses import JSONResponse, Response, StreamingResponse
from starlette.routing import Route

from core.decoding import SamplingParams
from core.serve.batching import Engine, Job, new_seed
from core.serve.schema import (DEFAULT_MAX_TOKENS, MAX_BODY_BYTES, ApiError, ChatRequest, parse_chat_request)

log = logging.getLogger("core.serve")


def error_response(exc: ApiError) -> JSONResponse:
    """An ApiError as its HTTP response."""
    headers = {"WWW-Authenticate": "Bearer"} if exc.status == 401 else None
    return JSONResponse(exc.body(), status_code=exc.status, headers=headers)


async def read_body(request: Request) -> bytes:
    """The request body, refused with 413 as soon as it passes MAX_BODY_BYTES (never read whole first)."""
    too_large = ApiError(413, f"The request body is larger than {MAX_BODY_BYTES} bytes.", code="request_too_large")
    length = request.headers.get("content-length")
    if length is not None and length.isdigit() and int(length) > MAX_BODY_BYTES:
        raise too_large
    chunks, size = [], 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > MAX_BODY_BYTES:
            raise too_large
        chunks.append(chunk)
    return b"".join(chunks)


class ApiKeyMiddleware:
    """Pure ASGI middleware: every HTTP request needs ``Authorization: Bearer KEY`` (compared in constant time)."""

    def __init__(self, app, api_key: str):
        self.app, self.key = app, api_key.encode()

    async def __call__(self, scope, receive, send):
        if scope["type"] == "http":
            header = dict(scope.get("headers") or ()).get(b"authorization", b"")
            scheme, _, token = header.partition(b" ")
            if scheme.lower() != b"bearer" or not hmac.compare_digest(token.strip(), self.key):
                what = "No API key was given" if not header else "The API key is wrong"
                exc = ApiError(401, f"{what}: send 'Authorization: Bearer KEY' with the key the server was "
                                    "started with.", code="invalid_api_key")
                await error_response(exc)(scope, receive, send)
                return
        await self.app(scope, receive, send)


class ChatService:
    """The request handlers over one Engine."""

    def __init__(self, engine: Engine):
        self.engine = engine

    async def models(self, request: Request) -> Response:
        """``GET /v1/models``: the one model this server answers with."""
        return JSONResponse({"object": "list", "data": [self._model_card()]})

    def _model_card(self) -> dict:
        return {"id": self.engine.model_id, "object": "model", "created": 0, "owned_by": "assistant-factory"}

    async def chat(self, request: Request) -> Response:
        """``POST /v1/chat/completions``."""
        try:
            req = parse_chat_request(await read_body(request))
            prompt, params = self._prepare(req)
        except ApiError as exc:
            return error_response(exc)
        job = await self.engine.submit(prompt, params, seeded=req.seed is not None)
        meta = {"id": f"chatcmpl-{uuid.uuid4().hex}", "created": int(time.time()), "model": self.engine.model_id}
        if req.stream:
            return StreamingResponse(self._sse(job, req, meta), media_type="text/event-stream",
                                     headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})
        return await self._complete(job, meta)

    def _prepare(self, req: ChatRequest) -> tuple[list[int], SamplingParams]:
        """The rendered prompt and the decoding settings; ApiError when they cannot be served."""
        if req.model != self.engine.model_id:
            raise ApiError(404, f"The model '{req.model}' does not exist here; this server answers with "
                                f"'{self.engine.model_id}' (see GET /v1/models).", "model", "model_not_found")
        try:
            prompt = self.engine.render(req.messages)
        except Exception as exc:  # noqa: BLE001 - a template that refuses these messages (e.g. roles out of order)
            raise ApiError(400, f"The model's chat template cannot render these messages: {exc}",
                           "messages") from None
        room = self.engine.context - len(prompt)
        if room < 1 or (req.max_tokens or 0) > room:
            raise ApiError(400, f"The prompt has {len(prompt)} tokens and max_tokens is {req.max_tokens}; "
                                f"together they must fit the model's context of {self.engine.context} tokens.",
                           "messages", "context_length_exceeded")
        max_new = req.max_tokens or min(DEFAULT_MAX_TOKENS, room)
        params = SamplingParams(max_new_tokens=max_new, do_sample=not req.greedy,
                                temperature=req.temperature if not req.greedy else 1.0, top_p=req.top_p,
                                seed=req.seed if req.seed is not None else new_seed(), stop_strings=tuple(req.stop))
        return prompt, params

    async def _complete(self, job: Job, meta: dict) -> Response:
        text: list[str] = []
        try:
            while True:
                kind, value = await job.events.get()
                if kind == "delta":
                    text.append(value)
                elif kind == "error":
                    raise value
                else:
                    break
        finally:
            job.cancelled = True  # done, or the client went away: either way the worker may drop it
        answer = value
        message = {"role": "assistant", "content": answer.text}
        return JSONResponse({**meta, "object": "chat.completion", "system_fingerprint": None,
                             "choices": [{"index": 0, "message": message, "logprobs": None,
                                          "finish_reason": _finish_reason(answer)}],
                             "usage": _usage(job, answer)})

    async def _sse(self, job: Job, req: ChatRequest, meta: dict) -> AsyncIterator[str]:
        """The chat.completion.chunk events of one answer, then ``data: [DONE]``."""
        def chunk(delta: dict, finish: Optional[str] = None, **extra) -> str:
            body = {**meta, "object": "chat.completion.chunk", "system_fingerprint": None,
                    "choices": [{"index": 0, "delta": delta, "logprobs": None, "finish_reason": finish}], **extra}
            return f"data: {json.dumps(body, ensure_ascii=False)}\n\n"

        try:
            yield chunk({"role": "assistant", "content": ""})
            while True:
                kind, value = await job.events.get()
                if kind == "delta":
                    yield chunk({"content": value})
                elif kind == "error":
                    log.error("decoding failed: %r", value)
                    err = ApiError(500, "The server failed while answering; see its log.", type_="server_error")
                    yield f"data: {json.dumps(err.body())}\n\n"
                    break
                else:
                    yield chunk({}, _finish_reason(value))
                    if req.include_usage:
                        body = {**meta, "object": "chat.completion.chunk", "choices": [],
                                "usage": _usage(job, value)}
                        yield f"data: {json.dumps(body)}\n\n"
                    break
            yield "data: [DONE]\n\n"
        finally:
            job.cancelled = True


def _finish_reason(answer) -> str:
    return "stop" if answer.finished else "length"


def _usage(job: Job, answer) -> dict:
    prompt, completion = len(job.prompt), answer.n_tokens
    return {"prompt_tokens": prompt, "completion_tokens": completion, "total_tokens": prompt + completion}


async def _http_error(request: Request, exc: HTTPException) -> Response:
    codes = {404: "not_found", 405: "method_not_allowed"}
    message = {404: f"There is no route {request.url.path}; this server offers GET /v1/models and "
                    "POST /v1/chat/completions.",
               405: f"{request.method} is not allowed on {request.url.path}."}.get(exc.status_code, str(exc.detail))
    return error_response(ApiError(exc.status_code, message, code=codes.get(exc.status_code)))


async def _server_error(request: Request, exc: Exception) -> Response:
    log.error("unexpected error on %s %s", request.method, request.url.path, exc_info=exc)
    return error_response(ApiError(500, "The server failed while answering; see its log.", type_="server_error"))


def build_app(engine: Engine, api_key: Optional[str] = None) -> Starlette:
    """The ASGI app serving ``engine``; with ``api_key`` every request must bring it as a Bearer token."""
    from contextlib import asynccontextmanager

    service = ChatService(engine)

    @asynccontextmanager
    async def lifespan(app):
        await engine.start()
        try:
            yield
        finally:
            await engine.close()

    routes = [Route("/v1/models", service.models, methods=["GET"]),
              Route("/v1/chat/completions", service.chat, methods=["POST"])]
    app = Starlette(routes=routes, lifespan=lifespan,
                    exception_handlers={HTTPException: _http_error, Exception: _server_error})
    if api_key:
        app.add_middleware(ApiKeyMiddleware, api_key=api_key)
    return app
