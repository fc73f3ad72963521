"""Real HTTP servers on 127.0.0.1 standing in for services that cannot exist in tests.

The internet (feeds and web pages), an OpenAI-compatible LLM provider and the optional clarification
endpoint are replaced by small servers that speak the real protocol over loopback, so the code under test
uses its real HTTP client, timeouts, status handling and retries. Each server listens on an ephemeral
port in a daemon thread and is used as a context manager:

    with StaticSite({"/feed.xml": (200, "application/rss+xml", RSS)}) as site:
        fetch_feed(site.url_for("/feed.xml"), client)

    with ChatCompletionsStandIn(fail_first=2, fail_status=429) as llm:
        OpenAIEvaluator(base_url=llm.base_url, ...)   # POST {base_url}/chat/completions
        llm.requests                                  # what it received

    with ClarificationStandIn(fail_first=1) as service:
        ClarificationClient(service.endpoint, client)

Every server records the requests it got (`requests`, newest last) and can be told to fail its first
`fail_first` calls with `fail_status` (429 and 503 replies carry `Retry-After: retry_after`).
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self

Route = tuple[int, str, bytes | str]  # (status, content type, body)


@dataclass(frozen=True)
class RecordedRequest:
    method: str
    path: str
    headers: dict[str, str]  # lower-case names
    body: bytes

    def json(self) -> Any:
        return json.loads(self.body)


@dataclass(frozen=True)
class Reply:
    status: int
    body: bytes = b""
    content_type: str = "application/json"
    headers: dict[str, str] = field(default_factory=dict)

    @classmethod
    def of_json(cls, status: int, payload: Any, headers: dict[str, str] | None = None) -> Reply:
        return cls(status, json.dumps(payload).encode(), "application/json", headers or {})


class LoopbackServer:
    """Base class: a ThreadingHTTPServer on 127.0.0.1 whose replies come from `respond`."""

    def __init__(self, fail_first: int = 0, fail_status: int = 503, retry_after: float = 0) -> None:
        self.fail_first = fail_first
        self.fail_status = fail_status
        self.retry_after = retry_after
        self.requests: list[RecordedRequest] = []
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        # A short poll interval makes shutdown() return quickly; the default 0.5 s adds up over many tests.
        self._thread = threading.Thread(
            target=self._server.serve_forever,
            kwargs={"poll_interval": 0.02},
            name=type(self).__name__,
            daemon=True,
        )

    @property
    def url(self) -> str:
        host, port = self._server.server_address[:2]
        return f"http://{host!s}:{port}"

    def url_for(self, path: str) -> str:
        return f"{self.url}{path}"

    @property
    def calls(self) -> int:
        with self._lock:
            return len(self.requests)

    def respond(self, request: RecordedRequest) -> Reply:
        raise NotImplementedError

    def _handle(self, request: RecordedRequest) -> Reply:
        with self._lock:
            self.requests.append(request)
            failing = self.fail_first > 0
            if failing:
                self.fail_first -= 1
        if failing:
            headers = {"Retry-After": f"{self.retry_after:g}"} if self.fail_status in (429, 503) else {}
            return Reply.of_json(self.fail_status, {"error": {"message": "stand-in told to fail"}}, headers)
        return self.respond(request)

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(owner: LoopbackServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def _serve(self) -> None:
            length = int(self.headers.get("Content-Length") or 0)
            body = self.rfile.read(length) if length else b""
            headers = {k.lower(): v for k, v in self.headers.items()}
            reply = owner._handle(RecordedRequest(self.command, self.path, headers, body))
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(reply.body)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if self.command != "HEAD":
                self.wfile.write(reply.body)

        do_GET = do_POST = do_HEAD = _serve

        def log_message(self, format: str, *args: Any) -> None:  # keep test output quiet
            pass

    return Handler


class StaticSite(LoopbackServer):
    """Serves fixed routes, path -> (status, content type, body); anything else is a 404.

    An empty content type sends no Content-Type header value worth trusting ("application/octet-stream").
    """

    def __init__(self, routes: Mapping[str, Route], **failures: Any) -> None:
        super().__init__(**failures)
        self.routes = dict(routes)

    def respond(self, request: RecordedRequest) -> Reply:
        route = self.routes.get(request.path)
        if route is None:
            return Reply(404, b"not found", "text/plain")
        status, content_type, body = route
        data = body.encode("utf-8") if isinstance(body, str) else body
        return Reply(status, data, content_type or "application/octet-stream")


def default_verdict(user_message: str) -> dict[str, Any]:
    """What the LLM stand-in answers: relevant when the document mentions security, else irrelevant."""
    if "security" in user_message.lower():
        return {
            "label": "relevant",
            "confidence": 0.9,
            "relevance": 0.85,
            "credibility": 0.7,
            "rationale": "The document discusses security.",
        }
    return {
        "label": "irrelevant",
        "confidence": 0.8,
        "relevance": 0.05,
        "credibility": 0.5,
        "rationale": "The document does not discuss the library's topics.",
    }


class ChatCompletionsStandIn(LoopbackServer):
    """An OpenAI-compatible `POST /v1/chat/completions`; point clients at `base_url`.

    `api_key` set: requests without `Authorization: Bearer <api_key>` get 401.
    `verdict(user_message) -> dict` decides the JSON verdict; `content` replaces the whole message
    content (to send an invalid reply).
    """

    def __init__(
        self,
        *,
        api_key: str | None = None,
        verdict: Callable[[str], dict[str, Any]] = default_verdict,
        content: str | None = None,
        **failures: Any,
    ) -> None:
        super().__init__(**failures)
        self.api_key = api_key
        self.verdict = verdict
        self.content = content

    @property
    def base_url(self) -> str:
        return f"{self.url}/v1"

    def respond(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != "/v1/chat/completions":
            return Reply.of_json(404, {"error": {"message": f"no route {request.method} {request.path}"}})
        if self.api_key is not None and request.headers.get("authorization") != f"Bearer {self.api_key}":
            return Reply.of_json(
                401, {"error": {"message": "Incorrect API key provided", "code": "invalid_api_key"}}
            )
        body = request.json()
        user = next((m["content"] for m in body["messages"] if m["role"] == "user"), "")
        content = self.content if self.content is not None else json.dumps(self.verdict(user))
        return Reply.of_json(
            200,
            {
                "id": f"chatcmpl-standin-{self.calls}",
                "object": "chat.completion",
                "model": body.get("model", "stand-in"),
                "choices": [
                    {
                        "index": 0,
                        "message": {"role": "assistant", "content": content},
                        "finish_reason": "stop",
                    }
                ],
                "usage": {
                    "prompt_tokens": len(user) // 4,
                    "completion_tokens": 40,
                    "total_tokens": len(user) // 4 + 40,
                },
            },
        )


class ClarificationStandIn(LoopbackServer):
    """The optional clarification endpoint: `POST /clarify` {"uri","title","excerpt"} -> {"notes": ...}."""

    def __init__(
        self,
        notes: Callable[[dict[str, Any]], str | None] | None = None,
        *,
        delay: float = 0.0,
        **failures: Any,
    ) -> None:
        """`delay`: seconds each answer takes (a slow service keeps a batch running long enough to act on)."""
        super().__init__(**failures)
        self.notes = notes or (lambda payload: f"Clarified: {payload.get('title') or payload['uri']}")
        self.delay = delay

    @property
    def endpoint(self) -> str:
        return f"{self.url}/clarify"

    def respond(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != "/clarify":
            return Reply.of_json(404, {"error": "not found"})
        if self.delay:
            time.sleep(self.delay)
        return Reply.of_json(200, {"notes": self.notes(request.json())})
