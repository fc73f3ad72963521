"""Temporal client helpers: connect, register search attributes, start and inspect batch workflows."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from sqlalchemy.orm import Session, sessionmaker
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import SearchAttributePair, TypedSearchAttributes, WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.service import RPCError, RPCStatusCode

from data import repository
from orchestration.constants import (
    ALL_SEARCH_ATTRIBUTES,
    SA_BATCH_ID,
    SA_BATCH_STATE,
    SA_SOURCE_ID,
    SCHEDULER_QUEUE,
    STATE_INGESTING,
    batch_workflow_id,
)
from orchestration.settings import Settings
from orchestration.types import BatchInput, BatchResult, DecisionInput, DecisionResult


async def connect(settings: Settings, *, lazy: bool = False) -> Client:
    return await Client.connect(
        settings.target_temporal_address, namespace=settings.temporal_namespace, lazy=lazy
    )


async def register_search_attributes(client: Client, namespace: str) -> None:
    """Add LoreGuard's custom search attributes (idempotent: existing ones are left alone)."""
    existing = await client.operator_service.list_search_attributes(
        ListSearchAttributesRequest(namespace=namespace)
    )
    wanted = {
        key.name: IndexedValueType.ValueType(key.indexed_value_type)
        for key in ALL_SEARCH_ATTRIBUTES
        if key.name not in existing.custom_attributes
    }
    if wanted:
        try:
            await client.operator_service.add_search_attributes(
                AddSearchAttributesRequest(namespace=namespace, search_attributes=wanted)
            )
        except RPCError as exc:  # a concurrent registration won the race
            if "already exists" not in str(exc):
                raise


async def start_refresh(
    client: Client,
    session_factory: sessionmaker[Session],
    *,
    source_id: int,
    trigger: str = "manual",
    actor: str | None = None,
) -> tuple[int, WorkflowHandle[Any, BatchResult]]:
    """Create a batch row for a source and start its batch workflow; returns (batch_id, handle)."""
    with session_factory.begin() as session:
        batch = repository.create_batch(session, source_id=source_id, trigger=trigger)
        batch_id = batch.id
        workflow_id = batch_workflow_id(batch_id)
        batch.workflow_id = workflow_id
        if actor:
            repository.record_audit(session, actor=actor, action="refresh", target=f"source:{source_id}")
    handle: WorkflowHandle[Any, BatchResult] = await client.start_workflow(
        "BatchWorkflow",
        BatchInput(batch_id=batch_id, source_id=source_id),
        id=workflow_id,
        task_queue=SCHEDULER_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=TypedSearchAttributes(
            [
                SearchAttributePair(SA_SOURCE_ID, str(source_id)),
                SearchAttributePair(SA_BATCH_ID, str(batch_id)),
                SearchAttributePair(SA_BATCH_STATE, STATE_INGESTING),
            ]
        ),
        execution_timeout=timedelta(days=7),
        result_type=BatchResult,
    )
    return batch_id, handle


class DecisionRefused(Exception):
    """An approve/reject that the batch did not accept, with the reason to show the operator."""


async def decide(
    client: Client,
    session_factory: sessionmaker[Session],
    *,
    batch_id: int,
    approve: bool,
    actor: str,
    reason: str = "",
    rpc_timeout: timedelta = timedelta(seconds=10),
) -> DecisionResult:
    """Send approve_retry or reject to a failed batch as an Update; refusals raise DecisionRefused."""
    with session_factory() as session:
        batch = repository.get_batch(session, batch_id=batch_id)
        workflow_id = batch.workflow_id
    if workflow_id is None:
        raise DecisionRefused(f"batch {batch_id} has no workflow")
    handle = client.get_workflow_handle(workflow_id)
    update = "approve_retry" if approve else "reject"
    try:
        return await handle.execute_update(
            update,
            DecisionInput(actor=actor, reason=reason),
            result_type=DecisionResult,
            rpc_timeout=rpc_timeout,
        )
    except WorkflowUpdateFailedError as err:
        cause = err.cause
        message = cause.message if isinstance(cause, ApplicationError) else str(cause or err)
        raise DecisionRefused(message) from err
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND or "already completed" in err.message:
            raise DecisionRefused(f"batch {batch_id} is no longer waiting for a decision") from err
        raise
