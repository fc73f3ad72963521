"""Fixtures for the stage tests: HTTP clients with short timeouts and the sample corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

from workers.stages.fetching import Fetcher
from workers.stages.netpolicy import AddressPolicy

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture
def loopback_fetcher() -> Iterator[Fetcher]:
    """The sources' fetcher, allowed to reach the loopback stand-ins (the policy forbids loopback otherwise)."""
    with Fetcher(AddressPolicy.allowing(["127.0.0.1"]), timeout_seconds=5.0) as fetcher:
        yield fetcher


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
