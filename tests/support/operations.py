"""Async adapters for tests that hold a Temporal client: start refreshes and send decisions through the
operations layer (as the CLI and the dashboard do), on a thread so the test's own worker keeps running."""

from __future__ import annotations

import asyncio
import functools
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client, WorkflowHandle

from core.roles import Role
from core.settings import Settings
from operations import Actor, Context
from operations import batches as batch_ops
from orchestration.gateway import TemporalGateway
from orchestration.types import BatchResult, DecisionResult


@functools.cache
def gateway(address: str, namespace: str) -> TemporalGateway:
    """One gateway per server for the test session (its loop thread is a daemon)."""
    return TemporalGateway(address, namespace, retry_after=0.0)


def context(client: Client, sessions: sessionmaker[Session]) -> Context:
    address = client.service_client.config.target_host
    settings = Settings(temporal_address=address, temporal_namespace=client.namespace)
    return Context(settings, sessions, gateway(address, client.namespace))


async def start_refresh(
    client: Client,
    sessions: sessionmaker[Session],
    *,
    source_id: int,
    trigger: str = "manual",
    actor: str = "tester",
    full: bool = False,
) -> tuple[int, WorkflowHandle[Any, BatchResult]]:
    """operations.batches.refresh_source (`full`: gather and process everything again); returns (batch id, a
    handle on the batch workflow)."""
    started = await asyncio.to_thread(
        batch_ops.refresh_source,
        Actor(actor, frozenset({Role.OPERATOR})),
        context(client, sessions),
        source_id,
        trigger=trigger,
        full=full,
    )
    return started.batch_id, client.get_workflow_handle(started.workflow_id, result_type=BatchResult)


async def decide(
    client: Client,
    sessions: sessionmaker[Session],
    *,
    batch_id: int,
    approve: bool,
    actor: str,
    reason: str = "",
) -> DecisionResult:
    """operations.batches.approve_retry / reject; NotAccepted when the batch refuses."""
    ctx = context(client, sessions)
    if approve:
        decided = await asyncio.to_thread(
            batch_ops.approve_retry, Actor(actor, frozenset({Role.OPERATOR})), ctx, batch_id, reason=reason
        )
    else:
        decided = await asyncio.to_thread(
            batch_ops.reject, Actor(actor, frozenset({Role.OPERATOR})), ctx, batch_id, reason=reason
        )
    return decided.result
