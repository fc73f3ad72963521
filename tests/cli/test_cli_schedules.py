"""`loreguard source add|set-interval|pause|resume|delete` keep the source's Temporal schedule in step."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from temporalio.client import Client

from cli.devserver import DevServer
from orchestration.schedules import ScheduleTimes, describe_source_schedule
from tests.support.cli import SAMPLES, Loreguard, cli_env

pytestmark = pytest.mark.temporal


def schedule(address: str, source_id: int) -> ScheduleTimes | None:
    async def describe() -> ScheduleTimes | None:
        return await describe_source_schedule(await Client.connect(address), source_id=source_id)

    return asyncio.run(describe())


def test_source_commands_act_on_the_schedule(tmp_path: Path, fresh_dev_server: DevServer) -> None:
    cli = Loreguard(tmp_path, cli_env(tmp_path, fresh_dev_server.address))
    cli.ok("setup")
    address = fresh_dev_server.address
    added = cli.ok("source", "add", "samples", "--kind", "folder", "--location", str(SAMPLES), "--json")
    assert added.stderr == ""
    t = schedule(address, 1)
    assert t is not None and (t.interval_seconds, t.paused) == (3600, False)

    assert "every 600 s" in cli.ok("source", "set-interval", "samples", "600").stdout
    assert "paused" in cli.ok("source", "pause", "1").stdout
    t = schedule(address, 1)
    assert t is not None and (t.interval_seconds, t.paused, t.next_run) == (600, True, None)
    cli.ok("source", "resume", "samples")
    t = schedule(address, 1)
    assert t is not None and not t.paused and t.next_run is not None

    assert "deleted" in cli.ok("source", "delete", "samples", "--yes").stdout
    assert schedule(address, 1) is None
    assert cli.counts()[0] == 0
    unknown = cli("source", "pause", "samples")
    assert unknown.returncode != 0 and "no source named" in unknown.stderr


def test_source_changes_stand_when_temporal_is_down(loreguard: Loreguard) -> None:
    added = loreguard.ok("source", "add", "samples", "--kind", "folder", "--location", str(SAMPLES))
    assert "warning: the schedule of source 1 was not updated" in added.stderr
    assert "loreguard up" in added.stderr
    assert "Traceback" not in added.stderr
    loreguard.ok("source", "pause", "samples")
    loreguard.ok("source", "set-interval", "samples", "120")
    sources, audits, _ = loreguard.counts()
    assert (sources, audits) == (1, 3)
