"""The one HTTP client for fetching a source: address policy, redirects, byte limit and overall deadline.

Every connection goes through `GuardedBackend`, which resolves the host once, checks every address against the
`AddressPolicy` and connects to a checked address (the request keeps its Host header and TLS server name), so a
second DNS answer cannot rebind the name to an internal address. Redirects are followed here, hop by hop, each
hop checked the same way. Bodies are decompressed here too, a bounded amount at a time, so a gzip bomb stops at
the byte limit instead of filling memory.

The overall deadline is kept by the network streams themselves (`_DeadlineStream`): every socket operation of a
fetch (resolve, connect, TLS, writing the request, each read of headers or body) waits at most until the deadline,
so a server that trickles its headers one byte at a time is cut off at the deadline like one that trickles its
body. Reads wait in slices of a second and heartbeat between them, so a slow exchange stays visibly alive.
"""

from __future__ import annotations

import contextvars
import ssl
import time
import zlib
from collections.abc import Callable, Iterable, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from concurrent.futures import TimeoutError as FutureTimeout
from dataclasses import dataclass, field
from types import TracebackType
from typing import Protocol, Self
from urllib.parse import urljoin, urlsplit

import certifi
import httpcore
import httpx

from core.errors import ErrorType
from core.urls import CREDENTIALS_REFUSAL, has_userinfo, without_userinfo
from guard.netpolicy import AddressPolicy, AddressRefused
from guard.types import SourceError

MAX_REDIRECTS = 5
DEFAULT_MAX_BYTES = 20 * 1024 * 1024
DEFAULT_DEADLINE_SECONDS = 120.0
DEFAULT_TIMEOUT_SECONDS = 20.0
_REDIRECTS = (301, 302, 303, 307, 308)
_SCHEMES = ("http", "https")


def _no_heartbeat() -> None:
    pass


class SourceTooLarge(SourceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorType.SOURCE_TOO_LARGE, message)


class FetchDeadlineExceeded(SourceError):
    def __init__(self, message: str) -> None:
        super().__init__(ErrorType.FETCH_DEADLINE, message)


class FetchSettings(Protocol):
    """The settings a Fetcher is built from (core.settings.Settings has them)."""

    @property
    def allowed_hosts(self) -> Sequence[str]: ...
    @property
    def max_document_bytes(self) -> int: ...
    @property
    def fetch_timeout_seconds(self) -> float: ...
    @property
    def fetch_deadline_seconds(self) -> float: ...


@dataclass
class _Exchange:
    """One fetch in progress on this thread: its deadline and heartbeat, seen by every socket operation."""

    deadline: float
    heartbeat: Callable[[], None]
    cut_off: bool = False  # an operation was stopped because the deadline came
    _last_beat: float = field(default=0.0)

    def wait_at_most(self, timeout: float | None, *, slice_seconds: float | None = None) -> float:
        """How long the next socket wait may take: the operation's timeout, the deadline, a slice (if any)."""
        remaining = self.deadline - time.monotonic()
        if remaining <= 0:
            self.cut_off = True
            return 0.0
        wait = remaining if timeout is None else min(timeout, remaining)
        return wait if slice_seconds is None else min(wait, slice_seconds)

    def beat(self) -> None:
        # The SDK throttles heartbeats too; this keeps a fast trickle from calling it for every byte.
        now = time.monotonic()
        if now - self._last_beat >= 1.0:
            self._last_beat = now
            self.heartbeat()


_exchange: contextvars.ContextVar[_Exchange | None] = contextvars.ContextVar("fetch_exchange", default=None)
_HEARTBEAT_SLICE_SECONDS = 1.0
# getaddrinfo has no timeout of its own: it runs here, and a fetch waits for it only until its deadline.
_resolvers = ThreadPoolExecutor(max_workers=4, thread_name_prefix="resolve")


class _DeadlineStream(httpcore.NetworkStream):
    """A socket stream whose every wait ends by the current fetch's deadline (see the module docstring)."""

    def __init__(self, inner: httpcore.NetworkStream) -> None:
        self._inner = inner

    def read(self, max_bytes: int, timeout: float | None = None) -> bytes:
        exchange = _exchange.get()
        if exchange is None:
            return self._inner.read(max_bytes, timeout)
        ends = None if timeout is None else time.monotonic() + timeout
        while True:
            left = None if ends is None else max(ends - time.monotonic(), 0.0)
            wait = exchange.wait_at_most(left, slice_seconds=_HEARTBEAT_SLICE_SECONDS)
            if wait <= 0:
                raise httpcore.ReadTimeout("the fetch's deadline passed")
            try:
                data = self._inner.read(max_bytes, wait)
            except httpcore.ReadTimeout:
                if exchange.wait_at_most(None) <= 0 or (ends is not None and time.monotonic() >= ends):
                    raise
                exchange.beat()  # only a slice ended: say we are alive, then wait on
                continue
            exchange.beat()
            return data

    def write(self, buffer: bytes, timeout: float | None = None) -> None:
        exchange = _exchange.get()
        if exchange is None:
            return self._inner.write(buffer, timeout)
        wait = exchange.wait_at_most(timeout)
        if wait <= 0:
            raise httpcore.WriteTimeout("the fetch's deadline passed")
        return self._inner.write(buffer, wait)

    def close(self) -> None:
        self._inner.close()

    def start_tls(
        self, ssl_context: ssl.SSLContext, server_hostname: str | None = None, timeout: float | None = None
    ) -> httpcore.NetworkStream:
        exchange = _exchange.get()
        if exchange is not None:
            timeout = exchange.wait_at_most(timeout)
            if timeout <= 0:
                raise httpcore.ConnectTimeout("the fetch's deadline passed")
        return _DeadlineStream(self._inner.start_tls(ssl_context, server_hostname, timeout))

    def get_extra_info(self, info: str) -> object:
        return self._inner.get_extra_info(info)


class GuardedBackend(httpcore.SyncBackend):
    """httpcore's socket backend, connecting only to addresses the policy allows, by the fetch's deadline."""

    def __init__(self, policy: AddressPolicy) -> None:
        self.policy = policy

    def _checked_addresses(self, host: str, port: int, exchange: _Exchange | None) -> list[str]:
        if exchange is None:
            return self.policy.checked_addresses(host, port)
        future = _resolvers.submit(self.policy.checked_addresses, host, port)
        try:
            return future.result(timeout=max(exchange.wait_at_most(None), 0.001))
        except FutureTimeout:
            exchange.cut_off = True
            raise httpcore.ConnectTimeout(f"resolving {host} outlasted the fetch's deadline") from None

    def connect_tcp(
        self,
        host: str,
        port: int,
        timeout: float | None = None,
        local_address: str | None = None,
        socket_options: Iterable[httpcore.SOCKET_OPTION] | None = None,
    ) -> httpcore.NetworkStream:
        exchange = _exchange.get()
        addresses = self._checked_addresses(host, port, exchange)
        last: Exception | None = None
        for address in addresses:
            wait = timeout
            if exchange is not None:
                wait = exchange.wait_at_most(timeout)
                if wait <= 0:
                    raise httpcore.ConnectTimeout("the fetch's deadline passed")
            try:
                stream = super().connect_tcp(address, port, wait, local_address, socket_options)
            except (httpcore.ConnectError, httpcore.ConnectTimeout) as exc:
                last = exc
                continue
            return _DeadlineStream(stream)
        assert last is not None  # checked_addresses never returns an empty list
        raise last


class GuardedTransport(httpx.HTTPTransport):
    """httpx's transport over a connection pool whose every TCP connection passes the address policy."""

    def __init__(self, policy: AddressPolicy) -> None:
        super().__init__(retries=0)
        # No proxy and no environment: a proxy would resolve the name itself, out of the policy's sight.
        self._pool = httpcore.ConnectionPool(
            ssl_context=ssl.create_default_context(cafile=certifi.where()),
            network_backend=GuardedBackend(policy),
        )


@dataclass(frozen=True)
class Fetched:
    """A complete response: the URL that answered (after redirects), its status, headers and decoded body."""

    url: str
    status: int
    reason: str
    headers: httpx.Headers
    body: bytes


class _BoundedDecoder:
    """Content-Encoding decoding that never produces more than `limit + 1` bytes in total."""

    def __init__(self, encoding: str, limit: int) -> None:
        self.limit = limit
        self.produced = 0
        coding = encoding.strip().lower()
        # "deflate" is sent both zlib-wrapped (the standard) and raw (old servers): the first error decides.
        self._may_be_raw = coding == "deflate"
        if coding in ("", "identity"):
            self._inflate: zlib._Decompress | None = None
        elif coding in ("gzip", "x-gzip"):
            self._inflate = zlib.decompressobj(zlib.MAX_WBITS | 16)
        elif coding == "deflate":
            self._inflate = zlib.decompressobj()
        else:
            raise SourceError(ErrorType.INVALID_SOURCE, f"unsupported content encoding {encoding!r}")

    def _room(self) -> int:
        return self.limit + 1 - self.produced

    def feed(self, data: bytes) -> Iterator[bytes]:
        if self._inflate is None:
            out = data[: self._room()]
            self.produced += len(out)
            yield out
            return
        pending = data
        while pending and self._room() > 0:
            try:
                out = self._inflate.decompress(pending, self._room())
            except zlib.error as exc:
                if self._may_be_raw and self.produced == 0:
                    self._inflate = zlib.decompressobj(-zlib.MAX_WBITS)
                    self._may_be_raw = False
                    continue
                raise SourceError(
                    ErrorType.INVALID_SOURCE, f"the response body does not decompress: {exc}"
                ) from exc
            self._may_be_raw = False
            self.produced += len(out)
            yield out
            pending = self._inflate.unconsumed_tail
            if self._inflate.eof:
                return

    @property
    def over_limit(self) -> bool:
        return self.produced > self.limit


def _transport_failure(url: str, exc: Exception) -> SourceError:
    if isinstance(exc, httpx.UnsupportedProtocol | httpx.InvalidURL):
        return SourceError(ErrorType.INVALID_SOURCE, f"{url} is not a fetchable URL: {exc}")
    return SourceError(ErrorType.SOURCE_UNAVAILABLE, f"cannot reach {url}: {type(exc).__name__}: {exc}")


class Fetcher:
    """GETs a source's URL under the address policy, at most MAX_REDIRECTS hops, `max_bytes` (decompressed)
    and `deadline_seconds` in total; `timeout_seconds` bounds each connect, read and write."""

    def __init__(
        self,
        policy: AddressPolicy,
        *,
        max_bytes: int = DEFAULT_MAX_BYTES,
        deadline_seconds: float = DEFAULT_DEADLINE_SECONDS,
        timeout_seconds: float = DEFAULT_TIMEOUT_SECONDS,
    ) -> None:
        self.policy = policy
        self.max_bytes = max_bytes
        self.deadline_seconds = deadline_seconds
        self.timeout_seconds = timeout_seconds
        self._client = httpx.Client(
            transport=GuardedTransport(policy),
            follow_redirects=False,
            trust_env=False,
            timeout=timeout_seconds,
            # Only encodings this module can decompress a bounded amount at a time.
            headers={"Accept-Encoding": "gzip, deflate"},
        )

    @classmethod
    def from_settings(cls, settings: FetchSettings) -> Fetcher:
        return cls(
            AddressPolicy.allowing(settings.allowed_hosts),
            max_bytes=settings.max_document_bytes,
            deadline_seconds=settings.fetch_deadline_seconds,
            timeout_seconds=settings.fetch_timeout_seconds,
        )

    def close(self) -> None:
        self._client.close()

    def __enter__(self) -> Self:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def get(
        self,
        url: str,
        *,
        max_bytes: int | None = None,
        heartbeat: Callable[[], None] = _no_heartbeat,
        headers: dict[str, str] | None = None,
    ) -> Fetched:
        """The response to GET `url` after redirects; SourceError subclasses say why there is none.

        `heartbeat` is called before each hop, after each piece of the body and at least every second while
        the server keeps us waiting (headers included), so a long fetch shows it is alive (and an activity
        cancelled meanwhile stops here: its heartbeat raises). The deadline covers the whole exchange.
        `headers` are sent with every hop (a conditional request's If-None-Match, say); a 304 has no body.
        """
        limit = self.max_bytes if max_bytes is None else max_bytes
        exchange = _Exchange(time.monotonic() + self.deadline_seconds, heartbeat)
        token = _exchange.set(exchange)
        try:
            return self._exchange(url, limit, exchange, headers or {})
        finally:
            _exchange.reset(token)

    def _exchange(self, url: str, limit: int, exchange: _Exchange, headers: dict[str, str]) -> Fetched:
        deadline, heartbeat = exchange.deadline, exchange.heartbeat
        current = url
        for hop in range(MAX_REDIRECTS + 1):
            scheme = urlsplit(current).scheme.lower()
            if scheme not in _SCHEMES:
                what = "redirects to" if hop else "is"
                raise SourceError(ErrorType.INVALID_SOURCE, f"{url} {what} {current}, not an http(s) URL")
            if has_userinfo(current):
                # Registration refuses such URLs; a server must not make us send (and log, and store) some.
                what = f"redirects to {without_userinfo(current)}" if hop else "is refused"
                raise SourceError(
                    ErrorType.INVALID_SOURCE, f"{without_userinfo(url)} {what}: {CREDENTIALS_REFUSAL}"
                )
            remaining = self._remaining(url, deadline)
            heartbeat()
            try:
                request = self._client.build_request(
                    "GET", current, headers=headers, timeout=min(self.timeout_seconds, remaining)
                )
                response = self._client.send(request, stream=True)
            except AddressRefused as exc:
                if hop:
                    raise AddressRefused(f"{url} redirects to {current}: {exc.message}") from exc
                raise
            except (httpx.HTTPError, httpx.InvalidURL) as exc:
                if exchange.cut_off or time.monotonic() >= deadline:
                    raise self._too_late(url) from exc
                raise _transport_failure(current, exc) from exc
            try:
                location = response.headers.get("location")
                if response.status_code in _REDIRECTS and location:
                    current = urljoin(current, location)
                    continue
                # An error status (or 304 Not Modified) is all the caller needs: no body is read, however large.
                status = response.status_code
                body = self._read(response, url, limit, exchange) if status < 400 and status != 304 else b""
                return Fetched(current, response.status_code, response.reason_phrase, response.headers, body)
            finally:
                response.close()
        raise SourceError(ErrorType.INVALID_SOURCE, f"{url} redirects more than {MAX_REDIRECTS} times")

    def _too_late(self, url: str) -> FetchDeadlineExceeded:
        return FetchDeadlineExceeded(
            f"{url} took longer than {self.deadline_seconds:g} s to fetch "
            "(LOREGUARD_FETCH_DEADLINE_SECONDS); it was cut off"
        )

    def _remaining(self, url: str, deadline: float) -> float:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            raise self._too_late(url)
        return remaining

    def _read(
        self,
        response: httpx.Response,
        url: str,
        limit: int,
        exchange: _Exchange,
    ) -> bytes:
        too_large = f"{url} is too large: more than {limit} bytes (LOREGUARD_MAX_DOCUMENT_BYTES)"
        encoding = response.headers.get("content-encoding", "")
        declared = response.headers.get("content-length", "")
        if not encoding and declared.isdigit() and int(declared) > limit:
            raise SourceTooLarge(f"{url} is too large: {declared} bytes, more than {limit} bytes")
        decoder = _BoundedDecoder(encoding, limit)
        body = bytearray()
        try:
            for raw in response.iter_raw():
                self._remaining(url, exchange.deadline)
                exchange.heartbeat()
                for piece in decoder.feed(raw):
                    body += piece
                if decoder.over_limit:
                    raise SourceTooLarge(too_large)
        except (httpx.HTTPError, httpx.InvalidURL) as exc:
            if exchange.cut_off or time.monotonic() >= exchange.deadline:
                raise self._too_late(url) from exc
            raise _transport_failure(url, exc) from exc
        return bytes(body)
