"""The dashboard's one Temporal gateway (orchestration/gateway.py), cached per process, and what it asks Temporal."""

from __future__ import annotations

from urllib.parse import quote

import pandas as pd
import streamlit as st
from temporalio.client import Client

from dashboard.config import settings
from orchestration.client import TemporalTarget, temporal_target
from orchestration.constants import Query
from orchestration.gateway import RPC_TIMEOUT, TemporalGateway, TemporalUnavailable
from orchestration.types import BatchProgress

__all__ = ["RPC_TIMEOUT", "TemporalGateway", "TemporalUnavailable"]


@st.cache_resource(show_spinner=False, on_release=lambda gateway: gateway.close())
def _gateway(target: TemporalTarget) -> TemporalGateway:
    return TemporalGateway(target)


def gateway() -> TemporalGateway:
    """The process's gateway for the configured Temporal (address, namespace, TLS, API key)."""
    return _gateway(temporal_target(settings()))


# --- what the dashboard asks ------------------------------------------------------------------------------

WORKFLOW_STATUSES = ("Running", "Completed", "Failed", "Canceled", "Terminated", "TimedOut", "ContinuedAsNew")


def workflow_status_counts(gateway: TemporalGateway) -> pd.DataFrame:
    """Workflows by execution status from visibility (one GROUP BY query), every status listed."""

    async def count(client: Client) -> dict[str, int]:
        result = await client.count_workflows("GROUP BY ExecutionStatus", rpc_timeout=RPC_TIMEOUT)
        return {str(g.group_values[0]): g.count for g in result.groups if g.group_values}

    counts = gateway.call(count)
    statuses = [*WORKFLOW_STATUSES, *sorted(set(counts) - set(WORKFLOW_STATUSES))]
    return pd.DataFrame({"status": statuses, "workflows": [counts.get(s, 0) for s in statuses]})


def workflow_progress(gateway: TemporalGateway, workflow_id: str) -> BatchProgress:
    """The batch workflow's `progress` query (needs a running worker); RPCError when nobody answers."""

    async def query(client: Client) -> BatchProgress:
        handle = client.get_workflow_handle(workflow_id)
        progress: BatchProgress = await handle.query(
            Query.PROGRESS, result_type=BatchProgress, rpc_timeout=RPC_TIMEOUT
        )
        return progress

    return gateway.call(query)


def temporal_ui_url(ui_port: int, namespace: str, workflow_id: str | None = None) -> str:
    base = f"http://127.0.0.1:{ui_port}/namespaces/{quote(namespace, safe='')}"
    if workflow_id is None:
        return f"{base}/workflows"
    return f"{base}/workflows/{quote(workflow_id, safe='')}"


def task_queue_ui_url(ui_port: int, namespace: str, queue: str) -> str:
    return f"http://127.0.0.1:{ui_port}/namespaces/{quote(namespace, safe='')}/task-queues/{quote(queue)}"
