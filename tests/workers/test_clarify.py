"""Clarify: duplicate detection against the library, and the optional clarification endpoint."""

from __future__ import annotations

import logging
import random

import httpx
import pytest

from tests.support.http_standins import ClarificationStandIn
from workers.stages.clarify import ClarificationClient, clarify, hamming, simhash_bands
from workers.stages.types import LibraryMatch, NormalizedDocument

DOC_HASH = "a" * 64
DOC_SIMHASH = -0x3A5F_0C1E_7788_99AB  # negative on purpose: signed BIGINT values must work


def doc(content_hash: str = DOC_HASH, simhash: int = DOC_SIMHASH) -> NormalizedDocument:
    return NormalizedDocument("file:///d.txt", "text/plain", "text", "en", content_hash, simhash, None)


def flip(value: int, *bits: int) -> int:
    """`value` with the given bits flipped, kept a signed 64-bit int."""
    for bit in bits:
        value ^= 1 << bit
    value &= (1 << 64) - 1
    return value - (1 << 64) if value >= 1 << 63 else value


@pytest.mark.parametrize(
    ("a", "b", "distance"),
    [
        (0, 0, 0),
        (-1, 0, 64),
        (-1, -1, 0),
        (0, 1 << 62, 1),
        (-(2**63), 0, 1),
        (DOC_SIMHASH, flip(DOC_SIMHASH, 0, 63), 2),
    ],
)
def test_hamming_on_signed_64_bit_values(a: int, b: int, distance: int) -> None:
    assert hamming(a, b) == distance


def test_bands_are_four_16_bit_values_and_near_fingerprints_share_one() -> None:
    assert simhash_bands(0x0001_0002_0003_0004) == (4, 3, 2, 1)
    assert simhash_bands(-1) == (0xFFFF,) * 4
    rng = random.Random(42)
    for _ in range(500):
        base = rng.getrandbits(64) - 2**63
        near = flip(base, *rng.sample(range(64), rng.randint(0, 3)))
        assert any(x == y for x, y in zip(simhash_bands(base), simhash_bands(near), strict=True))


@pytest.mark.parametrize(
    ("candidates", "expected"),
    [
        ([], (None, None, None)),
        (
            [
                LibraryMatch(7, "b" * 64, flip(DOC_SIMHASH, 1)),
                LibraryMatch(9, DOC_HASH, 0),
                LibraryMatch(3, DOC_HASH, 5),
            ],
            (3, None, 1.0),
        ),
        (
            [
                LibraryMatch(4, "b" * 64, flip(DOC_SIMHASH, 1, 2, 3)),
                LibraryMatch(8, "c" * 64, flip(DOC_SIMHASH, 5)),
            ],
            (None, 8, 1 - 1 / 64),
        ),
        (
            [
                LibraryMatch(8, "b" * 64, flip(DOC_SIMHASH, 5)),
                LibraryMatch(2, "c" * 64, flip(DOC_SIMHASH, 9)),
            ],
            (None, 2, 1 - 1 / 64),
        ),
        ([LibraryMatch(5, "b" * 64, flip(DOC_SIMHASH, 1, 2, 3, 4))], (None, None, None)),
    ],
    ids=[
        "nothing-similar",
        "exact-beats-near-and-oldest-wins",
        "nearest-wins",
        "tie-goes-to-oldest",
        "too-far",
    ],
)
def test_clarify_prefers_exact_duplicates_then_the_nearest(
    candidates: list[LibraryMatch], expected: tuple[int | None, int | None, float | None]
) -> None:
    result = clarify(doc(), candidates, notes="from service")
    assert (result.duplicate_of, result.near_duplicate_of, result.similarity) == expected
    assert result.notes == "from service"


def test_near_threshold_is_configurable() -> None:
    candidates = [LibraryMatch(5, "b" * 64, flip(DOC_SIMHASH, 1, 2, 3, 4))]
    assert clarify(doc(), candidates, near_threshold=4).near_duplicate_of == 5


def test_clarification_client_retries_then_returns_notes(http_client: httpx.Client) -> None:
    with ClarificationStandIn(fail_first=2, fail_status=500) as service:
        client = ClarificationClient(service.endpoint, http_client, attempts=3, initial_backoff=0.01)
        notes = client.clarify("https://example.org/a", "Patch policy", "x" * 5000)
    assert notes == "Clarified: Patch policy"
    assert service.calls == 3
    sent = service.requests[-1].json()
    assert sent["uri"] == "https://example.org/a" and len(sent["excerpt"]) <= 2000
    # The same document carries the same idempotency key on every attempt.
    assert len({r.headers["idempotency-key"] for r in service.requests}) == 1


@pytest.mark.parametrize(("status", "calls"), [(429, 3), (503, 3), (500, 3), (400, 1), (404, 1)])
def test_clarification_client_gives_up_quietly(
    http_client: httpx.Client, caplog: pytest.LogCaptureFixture, status: int, calls: int
) -> None:
    with ClarificationStandIn(fail_first=100, fail_status=status) as service:
        client = ClarificationClient(service.endpoint, http_client, attempts=3, initial_backoff=0.01)
        with caplog.at_level(logging.WARNING, logger="workers.stages.clarify"):
            assert client.clarify("https://example.org/a", None, "text") is None
    assert service.calls == calls  # 4xx other than 408/429 is not retried
    assert any("clarification endpoint" in r.getMessage() for r in caplog.records)


def test_clarification_client_survives_an_unreachable_endpoint(http_client: httpx.Client) -> None:
    with ClarificationStandIn() as service:
        endpoint = service.endpoint
    client = ClarificationClient(endpoint, http_client, attempts=2, initial_backoff=0.01)
    assert client.clarify("https://example.org/a", "t", "text") is None
