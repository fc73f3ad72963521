"""Clarify stage: is the document already in the library (exact or near duplicate), plus optional notes
from an external clarification endpoint."""

from __future__ import annotations

import hashlib
import logging
from collections.abc import Sequence
from typing import Any

import httpx
from tenacity import RetryError, Retrying, retry_if_exception, stop_after_attempt, wait_exponential

from workers.stages.types import Clarification, LibraryMatch, NormalizedDocument

log = logging.getLogger(__name__)

MASK64 = (1 << 64) - 1
EXCERPT_CHARS = 2000
MAX_BACKOFF_SECONDS = 30.0


def simhash_bands(simhash: int) -> tuple[int, int, int, int]:
    """The four 16-bit bands of the unsigned 64-bit fingerprint, lowest bits first.

    Two fingerprints within Hamming distance 3 differ in at most 3 bands, so they share at least one
    (pigeonhole): looking candidates up by band finds every near duplicate.
    """
    value = simhash & MASK64
    return (value & 0xFFFF, (value >> 16) & 0xFFFF, (value >> 32) & 0xFFFF, (value >> 48) & 0xFFFF)


def hamming(a: int, b: int) -> int:
    return ((a ^ b) & MASK64).bit_count()


def clarify(
    doc: NormalizedDocument,
    candidates: Sequence[LibraryMatch],
    notes: str | None = None,
    near_threshold: int = 3,
) -> Clarification:
    exact = [c.artifact_id for c in candidates if c.content_hash == doc.content_hash]
    if exact:
        return Clarification(duplicate_of=min(exact), near_duplicate_of=None, similarity=1.0, notes=notes)
    near = [(hamming(doc.simhash, c.simhash), c.artifact_id) for c in candidates]
    near = [pair for pair in near if pair[0] <= near_threshold]
    if not near:
        return Clarification(duplicate_of=None, near_duplicate_of=None, similarity=None, notes=notes)
    distance, artifact_id = min(near)  # closest first, then the oldest (smallest id)
    return Clarification(
        duplicate_of=None, near_duplicate_of=artifact_id, similarity=1.0 - distance / 64, notes=notes
    )


class _Transient(Exception):
    """A failure worth another attempt: the endpoint is busy or briefly down."""


def _is_transient(exc: BaseException) -> bool:
    return isinstance(exc, _Transient | httpx.TransportError)


class ClarificationClient:
    """Asks an optional external service for notes on a document.

    The service is optional, so after the last attempt it gives up with a warning and returns None
    rather than stalling the pipeline.
    """

    def __init__(
        self, url: str, client: httpx.Client, attempts: int = 3, initial_backoff: float = 0.5
    ) -> None:
        self.url = url
        self.client = client
        self.attempts = max(1, attempts)
        self.initial_backoff = initial_backoff

    def _post(self, payload: dict[str, Any], key: str) -> str | None:
        response = self.client.post(self.url, json=payload, headers={"Idempotency-Key": key})
        status = response.status_code
        if status >= 500 or status in (408, 429):
            raise _Transient(f"HTTP {status}")
        if status >= 400:
            log.warning("clarification endpoint refused %s: HTTP %s", payload["uri"], status)
            return None
        try:
            notes = response.json().get("notes")
        except (ValueError, AttributeError):
            log.warning(
                "clarification endpoint sent a reply that is not a JSON object for %s", payload["uri"]
            )
            return None
        return notes if isinstance(notes, str) and notes.strip() else None

    def clarify(self, uri: str, title: str | None, text_excerpt: str) -> str | None:
        payload = {"uri": uri, "title": title, "excerpt": text_excerpt[:EXCERPT_CHARS]}
        # The same document gets the same key on every attempt, so the service can deduplicate.
        key = hashlib.sha256(f"{uri}\n{payload['excerpt']}".encode()).hexdigest()
        retrying = Retrying(
            stop=stop_after_attempt(self.attempts),
            wait=wait_exponential(multiplier=self.initial_backoff, max=MAX_BACKOFF_SECONDS),
            retry=retry_if_exception(_is_transient),
        )
        try:
            result: str | None = retrying(self._post, payload, key)
            return result
        except RetryError as exc:
            cause = exc.last_attempt.exception()
            log.warning(
                "clarification endpoint failed %d times for %s (%s); going on without notes",
                self.attempts,
                uri,
                f"{type(cause).__name__}: {cause}" if cause else "unknown error",
            )
            return None
        except (httpx.HTTPError, httpx.InvalidURL) as exc:  # not worth retrying, e.g. a malformed URL
            log.warning("clarification endpoint unusable for %s (%s); going on without notes", uri, exc)
            return None
