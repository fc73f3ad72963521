"""Overview: figures from the library and from Temporal visibility, links to the pages explaining them, and a
page that keeps rendering when Temporal is down."""

from __future__ import annotations

import asyncio
from datetime import timedelta

import pytest
from streamlit.testing.v1 import AppTest
from temporalio.client import Client

from cli.devserver import DevServer
from orchestration.constants import ALL_QUEUES, SCHEDULER_QUEUE
from tests.dashboard.conftest import OpenPage, plotly_figures, unescaped, values
from tests.dashboard.seed import Seeded


def metrics(at: AppTest) -> dict[str, str]:
    return {m.label: m.value for m in at.metric}


def test_figures_match_the_library_and_link_to_their_pages(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("overview")

    shown = metrics(at)
    assert shown["Documents stored, last hour"] == f"{seeded.stored_since(timedelta(hours=1)):,}"
    assert shown["Documents stored, last 24 h"] == f"{seeded.stored_since(timedelta(hours=24)):,}"
    assert shown["Open SLA breaches"] == "2"  # open sla_warning + sla_critical; resolved and others not
    assert shown["Failed batches awaiting approval"] == "1"
    # batches that ended in the last 24 h, by how: b2 and b3 completed (b1 ended 26 h ago)
    assert [shown[f"Batches {s}, last 24 h"] for s in ("completed", "failed", "cancelled")] == ["2", "0", "0"]

    throughput = plotly_figures(at)["throughput"]["data"][0]
    assert len(values(throughput["y"])) == 24  # hourly buckets, empty ones included
    assert sum(values(throughput["y"])) == seeded.stored_since(timedelta(hours=24))

    links = {(link.proto.label, link.proto.page, link.proto.query_string) for link in at.page_link}
    assert ("Library", "library", "") in links
    assert ("Approvals", "approvals", "") in links
    assert ("Batches", "batches", "") in links
    assert ("Cancelled batches", "batches", "status=cancelled") in links


def test_temporal_down_is_named_and_the_rest_still_renders(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("overview")

    warnings = [unescaped(w.value) for w in at.warning]
    assert any(
        w.startswith("Workflow counts unavailable. Temporal unavailable at 127.0.0.1:") for w in warnings
    )
    assert any(w.startswith("Task-queue backlog unavailable.") for w in warnings)
    assert metrics(at)["Failed batches awaiting approval"] == "1"  # the library's figures are still there
    assert "throughput" in plotly_figures(at)


def test_empty_library_shows_zeros(dashboard_env: object, open_page: OpenPage) -> None:
    at = open_page("overview")
    assert set(metrics(at).values()) == {"0"}


@pytest.mark.temporal
def test_workflow_counts_and_backlog_come_from_temporal(
    fresh_dev_server: DevServer, monkeypatch: pytest.MonkeyPatch, seeded: Seeded, open_page: OpenPage
) -> None:
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", fresh_dev_server.address)

    async def start_two() -> None:  # no worker polls: both stay running, their tasks wait in the backlog
        client = await Client.connect(fresh_dev_server.address)
        for n in range(2):
            await client.start_workflow("BatchWorkflow", id=f"overview-{n}", task_queue=SCHEDULER_QUEUE)
        # Visibility is eventually consistent: wait (bounded) until it lists both, as the page will read it.
        deadline = asyncio.get_running_loop().time() + 30
        while (await client.count_workflows('ExecutionStatus="Running"')).count != 2:
            assert asyncio.get_running_loop().time() < deadline, "visibility never listed both workflows"
            await asyncio.sleep(0.1)

    asyncio.run(start_two())
    at = open_page("overview")

    assert not at.warning, [w.value for w in at.warning]
    counts = plotly_figures(at)["workflow_status"]["data"][0]
    by_status = dict(zip(values(counts["y"]), values(counts["x"]), strict=True))
    assert by_status["Running"] == 2
    assert by_status["Completed"] == 0

    backlog = at.dataframe[0].value
    assert sorted(set(backlog["queue"])) == sorted(ALL_QUEUES)
    assert set(backlog["type"]) == {"workflow", "activity"}
    assert backlog["backlog"].notna().all()
    assert (backlog["error"] == "").all()
    assert backlog["Temporal UI"].iloc[0].startswith("http://127.0.0.1:18233/namespaces/default/task-queues/")
