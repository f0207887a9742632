"""A real HTTP server on 127.0.0.1 that plays an LLM API from a script.

The openai 3.x and anthropic 2.x SDKs talk through httpx2, which respx and
pytest-httpx cannot intercept, so provider tests go through the real SDKs to
this server via ``base_url``. It speaks OpenAI ``POST /v1/chat/completions``
(also ``stream: true`` as server-sent events, closing the connection at the
end as a real server behind a proxy does) and Anthropic ``POST /v1/messages``
(also streamed); ``Reply.cut_stream`` drops either stream mid-answer. Each
request takes the next ``Reply`` from the script (the last one repeats when
the script runs out) and every request body is logged.

Usage::

    with FakeLlmServer([Reply.rate_limited(0.1), Reply.answer('{"findings": []}')]) as server:
        client = openai.AsyncOpenAI(base_url=server.openai_base_url, api_key="k")
        ...
        assert len(server.requests) == 2
"""

from __future__ import annotations

import json
import threading
from collections.abc import Callable, Iterable, Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any

OPENAI_PATH = "/v1/chat/completions"
ANTHROPIC_PATH = "/v1/messages"


@dataclass(frozen=True)
class Reply:
    """One scripted answer: a model text with status 200, or an HTTP error, after a delay."""

    status: int = 200
    text: str = ""
    delay_s: float = 0.0
    headers: dict[str, str] = field(default_factory=dict)
    input_tokens: int = 120
    output_tokens: int = 30
    # Streams only: close the connection after this many text pieces, without an end.
    cut_after: int | None = None

    @classmethod
    def answer(cls, text: str, *, input_tokens: int = 120, output_tokens: int = 30) -> Reply:
        """A normal completion whose model output is ``text`` (valid or malformed)."""
        return cls(text=text, input_tokens=input_tokens, output_tokens=output_tokens)

    @classmethod
    def rate_limited(cls, retry_after_s: float = 1.0) -> Reply:
        """429 with a Retry-After header."""
        value = f"{retry_after_s:g}"
        return cls(status=429, headers={"Retry-After": value})

    @classmethod
    def unavailable(cls, retry_after_s: float = 1.0) -> Reply:
        """503 with a Retry-After header: the server is overloaded or restarting."""
        return cls(status=503, headers={"Retry-After": f"{retry_after_s:g}"})

    @classmethod
    def error(cls, status: int = 500) -> Reply:
        return cls(status=status)

    @classmethod
    def cut_stream(cls, text: str, *, after_pieces: int = 1) -> Reply:
        """A stream that dies after ``after_pieces`` text pieces: no finish, no usage."""
        return cls(text=text, cut_after=after_pieces)

    @classmethod
    def slow(cls, delay_s: float, text: str = '{"findings": []}') -> Reply:
        """A normal answer that starts only after ``delay_s``: longer than a client timeout."""
        return cls(text=text, delay_s=delay_s)


@dataclass(frozen=True)
class RecordedRequest:
    """One request as received; header names lower-cased."""

    method: str
    path: str
    headers: dict[str, str]
    body: dict[str, Any]


class FakeLlmServer:
    """The server, as a context manager; ``url`` is known once it has started."""

    def __init__(
        self,
        script: Iterable[Reply] = (),
        *,
        model: str = "fake-model",
        responder: Callable[[dict[str, Any]], Reply] | None = None,
    ) -> None:
        # ``responder``, when given, answers each request from its body instead of the script.
        self._responder = responder
        self._script = list(script) or [Reply.answer('{"findings": []}')]
        self._next = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self.model = model
        self.requests: list[RecordedRequest] = []
        self._httpd: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        if self._httpd is None:
            raise RuntimeError("server not started")
        host, port = self._httpd.server_address[:2]
        return f"http://{host!s}:{port}"

    @property
    def openai_base_url(self) -> str:
        return f"{self.url}/v1"

    @property
    def anthropic_base_url(self) -> str:
        return self.url

    def enqueue(self, *replies: Reply) -> None:
        """Append replies to the script (after the ones not yet served)."""
        with self._lock:
            if self._next >= len(self._script):
                self._script = self._script[-1:]
                self._next = 1
            self._script.extend(replies)

    def start(self) -> FakeLlmServer:
        server = self

        class Handler(_Handler):
            fake = server

        self._httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self._httpd.daemon_threads = True
        self._thread = threading.Thread(
            target=self._httpd.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )
        self._thread.start()
        return self

    def stop(self) -> None:
        self._stopping.set()
        if self._httpd is not None:
            self._httpd.shutdown()
            self._httpd.server_close()
        if self._thread is not None:
            self._thread.join(timeout=5)

    def __enter__(self) -> FakeLlmServer:
        return self.start()

    def __exit__(
        self,
        exc_type: type[BaseException] | None,
        exc: BaseException | None,
        tb: TracebackType | None,
    ) -> None:
        self.stop()

    def _take(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            if self._responder is not None:
                return self._responder(request.body)
            reply = self._script[min(self._next, len(self._script) - 1)]
            self._next += 1
            return reply

    def _wait(self, seconds: float) -> bool:
        """Sleep ``seconds`` unless the server stops first; True when it did."""
        return self._stopping.wait(seconds)


class _Handler(BaseHTTPRequestHandler):
    fake: FakeLlmServer
    protocol_version = "HTTP/1.1"

    def log_message(self, format: str, *args: Any) -> None:  # noqa: A002 - stdlib signature
        """Quiet: tests read ``FakeLlmServer.requests`` instead of stderr."""

    def do_POST(self) -> None:  # noqa: N802 - stdlib naming
        length = int(self.headers.get("Content-Length") or 0)
        raw = self.rfile.read(length) if length else b""
        try:
            body = json.loads(raw or b"{}")
        except json.JSONDecodeError:
            body = {"_raw": raw.decode("utf-8", "replace")}
        path = self.path.split("?", 1)[0]
        headers = {name.lower(): value for name, value in self.headers.items()}
        if path not in (OPENAI_PATH, ANTHROPIC_PATH):
            self._send_json(404, {"error": {"message": f"no route {path}"}})
            return
        reply = self.fake._take(RecordedRequest("POST", path, headers, body))
        if reply.delay_s and self.fake._wait(reply.delay_s):
            return
        anthropic = path == ANTHROPIC_PATH
        try:
            if reply.status != 200:
                self._send_error(reply, anthropic=anthropic)
            elif body.get("stream"):
                model = self.fake.model
                events = (
                    _anthropic_events(reply, model)
                    if anthropic
                    else _openai_chunks(reply, model, body)
                )
                # Events before the first text piece: OpenAI's role chunk; Anthropic's
                # message_start and content_block_start.
                opening = 2 if anthropic else 1
                cut = None if reply.cut_after is None else reply.cut_after + opening
                self._send_stream(events, cut_after_events=cut)
            elif anthropic:
                self._send_json(200, _anthropic_message(reply, self.fake.model))
            else:
                self._send_json(200, _openai_completion(reply, self.fake.model))
        except (BrokenPipeError, ConnectionResetError):
            pass  # the client gave up (its timeout); nothing left to tell it

    def _send_json(
        self, status: int, payload: dict[str, Any], headers: dict[str, str] | None = None
    ) -> None:
        data = json.dumps(payload).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        for name, value in (headers or {}).items():
            self.send_header(name, value)
        self.end_headers()
        self.wfile.write(data)

    def _send_error(self, reply: Reply, *, anthropic: bool) -> None:
        message = f"scripted error {reply.status}"
        if anthropic:
            kind = "rate_limit_error" if reply.status == 429 else "api_error"
            payload: dict[str, Any] = {"type": "error", "error": {"type": kind, "message": message}}
        else:
            kind = "rate_limit_exceeded" if reply.status == 429 else "server_error"
            payload = {"error": {"message": message, "type": kind, "code": kind}}
        self._send_json(reply.status, payload, reply.headers)

    def _send_stream(self, events: Iterator[str], *, cut_after_events: int | None = None) -> None:
        """Server-sent events, no length: the end of the body is the closed connection.

        After ``cut_after_events`` events the connection closes mid-answer, as
        when a proxy or the model server dies.
        """
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.send_header("Cache-Control", "no-cache")
        self.send_header("Connection", "close")
        self.end_headers()
        for sent, event in enumerate(events):
            if cut_after_events is not None and sent >= cut_after_events:
                break
            self.wfile.write(event.encode())
            self.wfile.flush()
        self.close_connection = True


def _pieces(text: str, size: int = 8) -> list[str]:
    return [text[i : i + size] for i in range(0, len(text), size)] or [""]


def _openai_completion(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": "chatcmpl-fake",
        "object": "chat.completion",
        "created": 0,
        "model": model,
        "choices": [
            {
                "index": 0,
                "message": {"role": "assistant", "content": reply.text},
                "finish_reason": "stop",
            }
        ],
        "usage": {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        },
    }


def _openai_chunks(reply: Reply, model: str, body: dict[str, Any]) -> Iterator[str]:
    def chunk(delta: dict[str, Any], finish: str | None) -> str:
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [{"index": 0, "delta": delta, "finish_reason": finish}],
        }
        return f"data: {json.dumps(payload)}\n\n"

    yield chunk({"role": "assistant", "content": ""}, None)
    for piece in _pieces(reply.text):
        yield chunk({"content": piece}, None)
    yield chunk({}, "stop")
    if (body.get("stream_options") or {}).get("include_usage"):
        usage = {
            "prompt_tokens": reply.input_tokens,
            "completion_tokens": reply.output_tokens,
            "total_tokens": reply.input_tokens + reply.output_tokens,
        }
        payload = {
            "id": "chatcmpl-fake",
            "object": "chat.completion.chunk",
            "created": 0,
            "model": model,
            "choices": [],
            "usage": usage,
        }
        yield f"data: {json.dumps(payload)}\n\n"
    yield "data: [DONE]\n\n"


def _anthropic_message(reply: Reply, model: str) -> dict[str, Any]:
    return {
        "id": "msg_fake",
        "type": "message",
        "role": "assistant",
        "model": model,
        "content": [{"type": "text", "text": reply.text}],
        "stop_reason": "end_turn",
        "stop_sequence": None,
        "usage": {"input_tokens": reply.input_tokens, "output_tokens": reply.output_tokens},
    }


def _anthropic_events(reply: Reply, model: str) -> Iterator[str]:
    def event(name: str, payload: dict[str, Any]) -> str:
        return f"event: {name}\ndata: {json.dumps({'type': name, **payload})}\n\n"

    start = {**_anthropic_message(reply, model), "content": [], "stop_reason": None}
    start["usage"] = {"input_tokens": reply.input_tokens, "output_tokens": 0}
    yield event("message_start", {"message": start})
    yield event("content_block_start", {"index": 0, "content_block": {"type": "text", "text": ""}})
    for piece in _pieces(reply.text):
        yield event(
            "content_block_delta", {"index": 0, "delta": {"type": "text_delta", "text": piece}}
        )
    yield event("content_block_stop", {"index": 0})
    yield event(
        "message_delta",
        {
            "delta": {"stop_reason": "end_turn", "stop_sequence": None},
            "usage": {"output_tokens": reply.output_tokens},
        },
    )
    yield event("message_stop", {})
