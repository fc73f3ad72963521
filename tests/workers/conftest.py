"""Fixtures for the stage tests: HTTP clients with short timeouts and the sample corpus."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"


@pytest.fixture
def http_client() -> Iterator[httpx.Client]:
    with httpx.Client(timeout=5.0) as client:
        yield client


@pytest.fixture(scope="session")
def samples() -> Path:
    return SAMPLES
