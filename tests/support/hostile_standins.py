"""Loopback servers that behave like hostile sources: redirects, gzip bombs, huge and trickling bodies.

    with HostileSite({"/r": Redirect("http://169.254.169.254/")}) as site: ...
    with HostileSite({"/feed": Body(GZIP_BOMB, headers={"Content-Encoding": "gzip"})}) as site: ...
    with HostileSite({"/slow": Trickle(byte=b"<", every=1.0)}) as site: ...
    with HostileSite({"/slow-headers": TrickleHeaders(every=0.5)}) as site: ...

Each route records the requests it got (path and Host header) in `site.requests`.
"""

from __future__ import annotations

import threading
import time
import zlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from types import TracebackType
from typing import Any, Self


@dataclass(frozen=True)
class Redirect:
    location: str
    status: int = 302


@dataclass(frozen=True)
class Body:
    """`data` in `chunk`-sized writes; `declare_length=False` sends no Content-Length (read until close)."""

    data: bytes
    content_type: str = "application/rss+xml"
    headers: dict[str, str] = field(default_factory=dict)
    declare_length: bool = True
    chunk: int = 64 * 1024


@dataclass(frozen=True)
class Trickle:
    """A 200 whose body arrives one `byte` every `every` seconds, for at most `seconds`."""

    byte: bytes = b"<"
    every: float = 1.0
    seconds: float = 60.0
    content_type: str = "text/html"


@dataclass(frozen=True)
class TrickleHeaders:
    """A response whose status line and headers arrive one byte every `every` seconds (endless headers)."""

    every: float = 1.0
    seconds: float = 60.0


Route = Redirect | Body | Trickle | TrickleHeaders


def gzip_bomb(decompressed_bytes: int) -> bytes:
    """A gzip stream of `decompressed_bytes` zeros (about 1/1000 of that size)."""
    packer = zlib.compressobj(9, zlib.DEFLATED, zlib.MAX_WBITS | 16)
    block = bytes(1024 * 1024)
    parts = [packer.compress(block) for _ in range(decompressed_bytes // len(block))]
    parts.append(packer.flush())
    return b"".join(parts)


class HostileSite:
    def __init__(self, routes: Mapping[str, Route]) -> None:
        self.routes = dict(routes)
        self.requests: list[tuple[str, str]] = []  # (path, Host header)
        self._lock = threading.Lock()
        self._server = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(self))
        self._server.daemon_threads = True
        self._stop = threading.Event()
        self._thread = threading.Thread(
            target=self._server.serve_forever, kwargs={"poll_interval": 0.02}, daemon=True
        )

    @property
    def port(self) -> int:
        return int(self._server.server_address[1])

    def url_for(self, path: str, host: str = "127.0.0.1") -> str:
        return f"http://{host}:{self.port}{path}"

    def paths(self) -> list[str]:
        with self._lock:
            return [path for path, _ in self.requests]

    def __enter__(self) -> Self:
        self._thread.start()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self._stop.set()
        self._server.shutdown()
        self._server.server_close()
        self._thread.join(timeout=5)


def _handler_for(site: HostileSite) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        protocol_version = "HTTP/1.1"

        def do_GET(self) -> None:
            with site._lock:
                site.requests.append((self.path, self.headers.get("Host", "")))
            route = site.routes.get(self.path)
            try:
                if route is None:
                    self._reply(404, "text/plain", b"not found", {})
                elif isinstance(route, Redirect):
                    self._reply(route.status, "text/plain", b"", {"Location": route.location})
                elif isinstance(route, Body):
                    self._body(route)
                elif isinstance(route, TrickleHeaders):
                    self._trickle_headers(route)
                else:
                    self._trickle(route)
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client gave up, as it should

        def _reply(self, status: int, content_type: str, body: bytes, headers: dict[str, str]) -> None:
            self.send_response(status)
            self.send_header("Content-Type", content_type)
            self.send_header("Content-Length", str(len(body)))
            for name, value in headers.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(body)

        def _body(self, route: Body) -> None:
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            if route.declare_length:
                self.send_header("Content-Length", str(len(route.data)))
            else:
                self.send_header("Connection", "close")
                self.close_connection = True
            for name, value in route.headers.items():
                self.send_header(name, value)
            self.end_headers()
            view = memoryview(route.data)
            for start in range(0, len(view), route.chunk):
                if site._stop.is_set():
                    return
                self.wfile.write(view[start : start + route.chunk])

        def _trickle(self, route: Trickle) -> None:
            self.send_response(200)
            self.send_header("Content-Type", route.content_type)
            self.send_header("Connection", "close")
            self.close_connection = True
            self.end_headers()
            ends = time.monotonic() + route.seconds
            while time.monotonic() < ends and not site._stop.is_set():
                self.wfile.write(route.byte)
                self.wfile.flush()
                site._stop.wait(route.every)

        def _trickle_headers(self, route: TrickleHeaders) -> None:
            self.close_connection = True
            # The status line, then a header that never ends: the client never sees a complete head.
            head = b"HTTP/1.1 200 OK\r\nContent-Type: application/rss+xml\r\nX-Trickle: "
            ends = time.monotonic() + route.seconds
            sent = 0
            while time.monotonic() < ends and not site._stop.is_set():
                self.wfile.write(head[sent : sent + 1] or b"a")
                self.wfile.flush()
                sent += 1
                site._stop.wait(route.every)

        def log_message(self, format: str, *args: Any) -> None:
            pass

    return Handler
