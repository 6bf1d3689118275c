"""Validation of OpenAI chat-completion requests: every bad field becomes an ``ApiError`` (a 4xx in OpenAI's shape).

The bounds are defined once here; the server, the CLI and the tests read them from this module.
"""
from __future__ import annotations

import json
import math
from dataclasses import dataclass, field
from typing import Any, Optional

MAX_BODY_BYTES = 1024 * 1024       # a request body larger than this is refused before it is parsed (413)
MAX_MESSAGES = 256                 # messages in one request
MAX_MESSAGE_CHARS = 100_000        # characters in one message's content
MAX_TOKENS_LIMIT = 4096            # the largest max_tokens a request may ask for
DEFAULT_MAX_TOKENS = 256           # max_tokens when the request names none (clamped to the context left)
MAX_STOP = 4                       # stop strings per request (as OpenAI)
MAX_STOP_CHARS = 200
DEFAULT_TEMPERATURE = 1.0          # OpenAI's default; 0 means greedy decoding
ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


class ApiError(Exception):
    """A request the server refuses: HTTP status plus OpenAI's error fields."""

    def __init__(self, status: int, message: str, param: Optional[str] = None, code: Optional[str] = None,
                 type_: str = "invalid_request_error"):
        super().__init__(message)
        self.status, self.message, self.param, self.code, self.type = status, message, param, code, type_

    def body(self) -> dict:
        """OpenAI's error object."""
        return {"error": {"message": self.message, "type": self.type, "param": self.param, "code": self.code}}


@dataclass
class ChatRequest:
    """A validated ``POST /v1/chat/completions`` body (only the fields this server uses)."""

    model: str
    messages: list[dict]
    max_tokens: Optional[int] = None   # None: DEFAULT_MAX_TOKENS, clamped to the context left
    temperature: float = DEFAULT_TEMPERATURE
    top_p: float = 1.0
    seed: Optional[int] = None
    stop: list[str] = field(default_factory=list)
    stream: bool = False
    include_usage: bool = False        # stream_options.include_usage: one last chunk with the usage counts

    @property
    def greedy(self) -> bool:
        """Temperature 0 decodes greedily (the same answer every time)."""
        return self.temperature == 0


def _number(body: dict, name: str, low: float, high: float, default: float) -> float:
    value = body.get(name, default)
    if value is None:
        return default
    if isinstance(value, bool) or not isinstance(value, (int, float)) or not math.isfinite(value):
        raise ApiError(400, f"'{name}' must be a number between {low} and {high}, got {value!r}.", name)
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}.", name)
    return float(value)


def _int_or_none(body: dict, name: str, low: int, high: int) -> Optional[int]:
    value = body.get(name)
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int):
        raise ApiError(400, f"'{name}' must be an integer, got {value!r}.", name)
    if not low <= value <= high:
        raise ApiError(400, f"'{name}' must be between {low} and {high}, got {value}.", name)
    return value


def _content(value: Any, i: int) -> str:
    """A message's text: a string, or a list of ``{"type": "text", "text": ...}`` parts (joined)."""
    param = f"messages[{i}].content"
    if isinstance(value, list):
        parts = []
        for part in value:
            if not isinstance(part, dict) or part.get("type") != "text" or not isinstance(part.get("text"), str):
                raise ApiError(400, f"'{param}' parts must be {{'type': 'text', 'text': str}}; this server "
                                    "answers text only.", param)
            parts.append(part["text"])
        value = "".join(parts)
    if not isinstance(value, str):
        raise ApiError(400, f"'{param}' must be a string, got {type(value).__name__}.", param)
    if len(value) > MAX_MESSAGE_CHARS:
        raise ApiError(400, f"'{param}' is longer than {MAX_MESSAGE_CHARS} characters.", param)
    return value


def _messages(value: Any) -> list[dict]:
    if not isinstance(value, list) or not value:
        raise ApiError(400, "'messages' must be a non-empty list of {'role', 'content'} objects.", "messages")
    if len(value) > MAX_MESSAGES:
        raise ApiError(400, f"'messages' holds {len(value)} messages; at most {MAX_MESSAGES} are allowed.",
                       "messages")
    out = []
    for i, msg in enumerate(value):
        if not isinstance(msg, dict):
            raise ApiError(400, f"'messages[{i}]' must be an object with 'role' and 'content'.", f"messages[{i}]")
        role = msg.get("role")
        if role not in ROLES:
            raise ApiError(400, f"'messages[{i}].role' must be one of {sorted(ROLES)}, got {role!r}.",
                           f"messages[{i}].role")
        out.append({"role": ROLES[role], "content": _content(msg.get("content"), i)})
    if out[-1]["role"] == "assistant":
        raise ApiError(400, "The last message must not be the assistant's: there would be nothing to answer.",
                       "messages")
    return out


def _stop(value: Any) -> list[str]:
    stops = [value] if isinstance(value, str) else value if value is not None else []
    if not isinstance(stops, list) or not all(isinstance(s, str) and s for s in stops):
        raise ApiError(400, "'stop' must be a non-empty string or a list of non-empty strings.", "stop")
    if len(stops) > MAX_STOP or any(len(s) > MAX_STOP_CHARS for s in stops):
        raise ApiError(400, f"'stop' allows at most {MAX_STOP} strings of {MAX_STOP_CHARS} characters.", "stop")
    return stops


def parse_json(raw: bytes) -> dict:
    """The body as a JSON object (ApiError 400 when it is not one)."""
    try:
        body = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ApiError(400, f"The request body is not valid JSON ({exc}).") from None
    if not isinstance(body, dict):
        raise ApiError(400, "The request body must be a JSON object.")
    return body


def parse_chat_request(raw: bytes) -> ChatRequest:
    """Validate a chat-completion body; unknown fields are ignored, as OpenAI's clients send extras."""
    body = parse_json(raw)
    model = body.get("model")
    if not isinstance(model, str) or not model:
        raise ApiError(400, "'model' is required: the id GET /v1/models lists.", "model")
    n = body.get("n", 1)
    if n not in (1, None) or isinstance(n, bool):
        raise ApiError(400, "Only 'n': 1 is supported.", "n")
    stream = body.get("stream", False)
    if not isinstance(stream, bool) and stream is not None:
        raise ApiError(400, f"'stream' must be true or false, got {stream!r}.", "stream")
    options = body.get("stream_options") or {}
    if not isinstance(options, dict):
        raise ApiError(400, "'stream_options' must be an object.", "stream_options")
    max_tokens = _int_or_none(body, "max_tokens", 1, MAX_TOKENS_LIMIT)
    if max_tokens is None:
        max_tokens = _int_or_none(body, "max_completion_tokens", 1, MAX_TOKENS_LIMIT)
    top_p = _number(body, "top_p", 0.0, 1.0, 1.0)
    if top_p == 0:
        raise ApiError(400, "'top_p' must be greater than 0.", "top_p")
    return ChatRequest(model=model, messages=_messages(body.get("messages")), max_tokens=max_tokens,
                       temperature=_number(body, "temperature", 0.0, 2.0, DEFAULT_TEMPERATURE), top_p=top_p,
                       seed=_int_or_none(body, "seed", -2**63, 2**63 - 1), stop=_stop(body.get("stop")),
                       stream=bool(stream), include_usage=bool(options.get("include_usage")))
