"""A long-lived Temporal client owned by one event-loop thread, for callers that are not async themselves.

The SDK client is not thread-safe, and neither Streamlit (a thread per session) nor a click command runs an
event loop of its own, so all calls go through a `TemporalGateway`: coroutines are submitted to the gateway's loop
and waited on with a deadline. When Temporal cannot be reached (or answers too slowly) the gateway says so at once
for a few seconds instead of making every caller wait, then tries again by itself.
"""

from __future__ import annotations

import asyncio
import logging
import threading
import time
from collections.abc import Awaitable, Callable
from concurrent.futures import Future
from concurrent.futures import TimeoutError as FutureTimeout
from datetime import timedelta
from typing import TypeVar

from temporalio.client import Client
from temporalio.service import RPCError, RPCStatusCode

from orchestration.client import TemporalTarget

log = logging.getLogger(__name__)

T = TypeVar("T")

RPC_TIMEOUT = timedelta(seconds=2)  # every call from the dashboard carries a deadline
CALL_TIMEOUT = 4.0  # the whole call, SDK retries included (a dead server is retried for ~10 s otherwise)
CONNECT_TIMEOUT = 3.0
RETRY_AFTER = 5.0  # after a failure, say "unavailable" at once for this long, then try again

# Status codes that mean "Temporal is not there", as opposed to "this request was refused".
TRANSPORT_CODES = (RPCStatusCode.UNAVAILABLE, RPCStatusCode.DEADLINE_EXCEEDED)


class TemporalUnavailable(RuntimeError):
    """Temporal cannot be reached or answered too slowly; the message names the address and the reason."""

    def __init__(self, message: str, reason: str = "") -> None:
        super().__init__(message)
        self.reason = reason


class TemporalGateway:
    """One Temporal client on one asyncio loop thread; thread-safe `call` with deadlines and recovery."""

    def __init__(
        self,
        target: TemporalTarget | str,
        namespace: str = "default",
        *,
        connect_timeout: float | None = None,
        retry_after: float | None = None,
    ) -> None:
        """`target` comes from `orchestration.client.temporal_target(settings)` (TLS, API key); a bare address
        (with `namespace`) means a plain connection, as to a local dev server."""
        self.target = target if isinstance(target, TemporalTarget) else TemporalTarget(target, namespace)
        self.address = self.target.address
        self.namespace = self.target.namespace
        self.connect_timeout = CONNECT_TIMEOUT if connect_timeout is None else connect_timeout
        self.retry_after = RETRY_AFTER if retry_after is None else retry_after
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(
            target=self._loop.run_forever, name=f"temporal-gateway-{self.address}", daemon=True
        )
        self._thread.start()
        self._client: Client | None = None  # read and written on the loop thread only
        self._lock = threading.Lock()
        self._down_until = 0.0
        self._last_error: str | None = None
        self._closed = False

    # --- state ------------------------------------------------------------------------------------------

    @property
    def last_error(self) -> str | None:
        with self._lock:
            return self._last_error

    def unavailable_message(self, reason: str | None = None) -> str:
        why = reason or self.last_error or "no answer"
        return f"Temporal unavailable at {self.address} (namespace {self.namespace}): {why}"

    def _mark_down(self, reason: str) -> TemporalUnavailable:
        with self._lock:
            self._last_error = reason
            self._down_until = time.monotonic() + self.retry_after
        log.warning("Temporal at %s unavailable: %s", self.address, reason)
        return TemporalUnavailable(self.unavailable_message(reason), reason)

    def _mark_up(self) -> None:
        with self._lock:
            self._last_error = None
            self._down_until = 0.0

    # --- calls ------------------------------------------------------------------------------------------

    def call(self, fn: Callable[[Client], Awaitable[T]], *, timeout: float = CALL_TIMEOUT) -> T:
        """Run `fn(client)` on the gateway's loop and return its result within `timeout` seconds.

        Raises TemporalUnavailable when Temporal cannot be reached or is too slow; other errors (a workflow
        that does not exist, a query no worker answered) come back as they are.
        """
        with self._lock:
            closed, resting, last = self._closed, time.monotonic() < self._down_until, self._last_error
        if closed:
            raise TemporalUnavailable(self.unavailable_message("the Temporal client was closed"))
        if resting:
            raise TemporalUnavailable(self.unavailable_message(last), last or "")
        future: Future[T] = asyncio.run_coroutine_threadsafe(self._run(fn, timeout), self._loop)
        try:
            result = future.result(timeout + self.connect_timeout + 1.0)
        except (FutureTimeout, TimeoutError):
            future.cancel()
            raise self._mark_down(f"no answer within {timeout:g} s") from None
        except _ConnectFailed as exc:
            raise self._mark_down(str(exc)) from None
        except RPCError as exc:
            if exc.status in TRANSPORT_CODES and not _is_query_timeout(exc):
                raise self._mark_down(exc.message or exc.status.name) from exc
            self._mark_up()  # Temporal answered: it is there, this request was refused
            raise
        self._mark_up()
        return result

    async def _run(self, fn: Callable[[Client], Awaitable[T]], timeout: float) -> T:
        client = await self._connected()
        try:
            return await asyncio.wait_for(fn(client), timeout)
        except RPCError as exc:
            if exc.status == RPCStatusCode.UNAVAILABLE:
                self._client = None  # reconnect next time: the server may have moved or restarted
            raise

    async def _connected(self) -> Client:
        if self._client is None:
            try:
                self._client = await asyncio.wait_for(self.target.connect(), self.connect_timeout)
            except (TimeoutError, RuntimeError, OSError) as exc:
                reason = (
                    f"no connection within {self.connect_timeout:g} s"
                    if isinstance(exc, TimeoutError)
                    else connect_reason(exc, secure=self.target.secure)
                )
                raise _ConnectFailed(reason) from exc
        return self._client

    def close(self) -> None:
        with self._lock:
            if self._closed:
                return
            self._closed = True
        self._loop.call_soon_threadsafe(self._loop.stop)
        self._thread.join(timeout=5)


class _ConnectFailed(Exception):
    pass


def _is_query_timeout(exc: RPCError) -> bool:
    # A query nobody answers (no worker polling) ends with "Timeout expired": Temporal itself is fine.
    return "timeout expired" in exc.message.lower()


def connect_reason(error: BaseException, *, secure: bool | None = None) -> str:
    """The readable part of a connect error: 'Connection refused' rather than the whole tonic chain; for TLS
    failures, what is wrong and which setting to look at."""
    if isinstance(error, TemporalUnavailable) and error.reason:
        return error.reason
    message = str(error)
    hint = tls_problem(message, secure)
    if hint:
        return hint
    for marker in ('message: "', "error: "):
        if marker in message:
            tail = message.rsplit(marker, 1)[1]
            return tail.split('"', 1)[0].rstrip(")")
    return message.splitlines()[0][:200]


def tls_problem(message: str, secure: bool | None) -> str | None:
    """A TLS failure in the SDK's (rustls) words, said for an operator; None when it is not one."""
    if "InvalidContentType" in message or "InvalidMessage" in message:
        return (
            "TLS handshake failed: the server does not speak TLS (a plain server? then unset "
            "LOREGUARD_TEMPORAL_TLS, the LOREGUARD_TEMPORAL_TLS_* files and the API key)"
        )
    if "UnknownIssuer" in message or "BadSignature" in message:
        return (
            "TLS: the server's certificate is not signed by a trusted CA (set LOREGUARD_TEMPORAL_TLS_CA_FILE "
            "to the CA that signed it)"
        )
    if "NotValidForName" in message:
        expected = (
            message.split('expected: DnsName("', 1)[-1].split('"', 1)[0] if "expected" in message else ""
        )
        return (
            f"TLS: the server's certificate is not valid for the name {expected or 'dialled'} (set "
            "LOREGUARD_TEMPORAL_TLS_SERVER_NAME to a name it carries)"
        )
    if "Expired" in message and "InvalidCertificate" in message:
        return "TLS: the server's certificate has expired"
    # A refused client certificate arrives after a TLS 1.3 handshake, so it may surface only as a closed or
    # reset connection, or as the SDK's bare "transport error".
    lowered = message.lower()
    closed = any(
        marker in lowered
        for marker in ("close_notify", "unexpectedeof", "broken pipe", "connection reset", "transport error")
    )
    # The SDK may also give up on such a connection with a bare "operation was canceled".
    if (closed or "operation was canceled" in lowered) and secure is True:
        return (
            "the server closed the TLS connection: it may want a client certificate it trusts "
            "(LOREGUARD_TEMPORAL_TLS_CERT_FILE and LOREGUARD_TEMPORAL_TLS_KEY_FILE) or a valid API key"
        )
    if closed and secure is False:
        return (
            "the server closed the connection: it may require TLS (set LOREGUARD_TEMPORAL_TLS, the "
            "LOREGUARD_TEMPORAL_TLS_* files or LOREGUARD_TEMPORAL_API_KEY)"
        )
    return None
