"""Parsing what a source sent under a memory bound, so a hostile input fails alone and no process dies of it.

`limit_memory` caps a process's address space (RLIMIT_AS): the CPU pool's processes call it at start, and
`run_confined` runs one parse in a short-lived child process that calls it first. Inside the bound an
allocation that does not fit raises MemoryError instead of growing the process until the machine kills it; a
child that dies anyway (a library that aborts on a failed allocation) takes only itself down. The worker's
feed parsing and the dashboard's dry run use `run_confined`, so neither parses untrusted bytes in its own
(long-lived, unbounded) process.
"""

from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import resource
import signal
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any, TypeVar

from core.errors import ErrorType
from guard.types import DocumentError, SourceError

In = TypeVar("In")
Out = TypeVar("Out")

MiB = 1024 * 1024
DEFAULT_PARSE_MEMORY_MB = 2048
_HEARTBEAT_SECONDS = 1.0
# Modules a confined child needs, loaded once by the fork server (not again in every child); a caller whose
# function lives elsewhere adds its modules with `preload` before its first confined parse.
_PRELOAD = ["guard.gather"]


@dataclass(frozen=True)
class ParseLimits:
    """The bounds of one confined parse: address space (MiB, 0 = none) and wall-clock seconds (0 = none)."""

    memory_mb: int = DEFAULT_PARSE_MEMORY_MB
    seconds: float = 0.0


class ConfinedFailure(Exception):
    """The confined parse did not finish: out of memory, out of time, or its process died. `reason` says which."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def limit_memory(memory_mb: int) -> None:
    """Cap this process's address space at `memory_mb` MiB (never above a hard limit already set)."""
    if memory_mb <= 0:
        return
    _soft, hard = resource.getrlimit(resource.RLIMIT_AS)
    limit = memory_mb * MiB
    if hard != resource.RLIM_INFINITY:
        limit = min(limit, hard)
    resource.setrlimit(resource.RLIMIT_AS, (limit, hard))


def memory_limit_mb() -> int | None:
    """This process's address-space limit in MiB, or None when it has none."""
    soft, _hard = resource.getrlimit(resource.RLIMIT_AS)
    return None if soft == resource.RLIM_INFINITY else soft // MiB


def out_of_memory_reason(stage: str) -> str:
    """Why a document failed at `stage` with MemoryError, naming the limit in force and its setting."""
    limit = memory_limit_mb()
    bound = f"more than {limit} MiB of memory" if limit is not None else "more memory than there was"
    return f"needed {bound} (LOREGUARD_PARSE_MEMORY_MB); stopped at {stage}"


def _child(
    conn: multiprocessing.connection.Connection,
    fn: Callable[[Any], Any],
    arg: Any,
    memory_mb: int,
    seconds: float,
) -> None:
    if seconds > 0:
        # Should the parent vanish (kill -9), the child still ends: SIGALRM's default action terminates it.
        signal.alarm(int(seconds) + 5)
    limit_memory(memory_mb)
    try:
        outcome: tuple[Any, ...] = ("ok", fn(arg))
    except MemoryError:
        outcome = ("memory",)
    except SourceError as exc:  # sent as plain values: these exceptions do not pickle with their fields
        outcome = ("source", exc.kind, exc.message)
    except DocumentError as exc:
        outcome = ("document", exc.stage, exc.reason)
    except Exception as exc:
        outcome = ("error", f"{type(exc).__name__}: {exc}")
    try:
        conn.send(outcome)
    except MemoryError:  # a result too large to pickle within the bound
        conn.send(("memory",))
    conn.close()


def preload(*modules: str) -> None:
    """Have the fork server load `modules` too (when it starts: it is started by the first confined parse)."""
    _PRELOAD.extend(module for module in modules if module not in _PRELOAD)


def _context() -> multiprocessing.context.BaseContext:
    # forkserver, not fork: the worker has Temporal's runtime threads and the dashboard Streamlit's, which a
    # fork would copy half-alive. The preload is ignored when the CPU pool started the fork server first.
    ctx = multiprocessing.get_context("forkserver")
    ctx.set_forkserver_preload(_PRELOAD)
    return ctx


def run_confined(
    fn: Callable[[In], Out],
    arg: In,
    *,
    limits: ParseLimits,
    what: str,
    heartbeat: Callable[[], None] = lambda: None,
) -> Out:
    """`fn(arg)` in a child process under `limits`; `fn` must be a module-level function.

    A SourceError or DocumentError raised by `fn` is raised here as it was; running out of memory or time,
    or the child dying, raises ConfinedFailure with a reason naming `what` and the limit. `heartbeat` is
    called about every second while the child works (it may raise to cancel: the child is then killed).
    """
    ctx = _context()
    receiver, sender = ctx.Pipe(duplex=False)
    child = ctx.Process(  # type: ignore[attr-defined]
        target=_child, args=(sender, fn, arg, limits.memory_mb, limits.seconds), daemon=True
    )
    child.start()
    sender.close()
    ends = time.monotonic() + limits.seconds if limits.seconds > 0 else None
    try:
        while True:
            wait = _HEARTBEAT_SECONDS if ends is None else min(_HEARTBEAT_SECONDS, ends - time.monotonic())
            if wait <= 0:
                raise ConfinedFailure(
                    f"{what} took longer than {limits.seconds:g} s "
                    "(LOREGUARD_DOCUMENT_TIME_LIMIT_SECONDS); it was stopped"
                )
            if multiprocessing.connection.wait([receiver, child.sentinel], timeout=wait):
                break
            heartbeat()
        try:
            outcome = receiver.recv()
        except EOFError:
            child.join(5)
            raise ConfinedFailure(f"{what} ended its process ({_how_it_ended(child.exitcode)})") from None
    finally:
        receiver.close()
        if child.is_alive():
            child.kill()
        child.join(5)
    return _unpack(outcome, what, limits)


def _how_it_ended(exitcode: int | None) -> str:
    if exitcode is not None and exitcode < 0:
        return f"killed by {signal.Signals(-exitcode).name}"
    return f"exit code {exitcode}"


def _unpack(outcome: tuple[Any, ...], what: str, limits: ParseLimits) -> Any:
    kind = outcome[0]
    if kind == "ok":
        return outcome[1]
    if kind == "source":
        raise SourceError(outcome[1], outcome[2])
    if kind == "document":
        raise DocumentError(outcome[1], outcome[2])
    if kind == "memory":
        raise ConfinedFailure(
            f"{what} needed more than {limits.memory_mb} MiB of memory (LOREGUARD_PARSE_MEMORY_MB); "
            "it was stopped"
        )
    raise ConfinedFailure(f"{what} failed: {outcome[1]}")


def source_limit(url: str, failure: ConfinedFailure) -> SourceError:
    """A confined feed parse that did not finish, as the source's error (not worth retrying)."""
    return SourceError(ErrorType.PARSE_LIMIT, f"{url}: {failure.reason}")
