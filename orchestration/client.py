"""Temporal client helpers: connect, register search attributes, start batch workflows, send decisions and
cancellations.

No database here: the operations layer writes the rows and calls these with ids."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import timedelta
from pathlib import Path
from typing import Any

from google.protobuf.duration_pb2 import Duration
from temporalio.api.enums.v1 import IndexedValueType
from temporalio.api.namespace.v1 import NamespaceConfig
from temporalio.api.operatorservice.v1 import AddSearchAttributesRequest, ListSearchAttributesRequest
from temporalio.api.workflowservice.v1 import DescribeNamespaceRequest, UpdateNamespaceRequest
from temporalio.client import Client, WorkflowHandle, WorkflowUpdateFailedError
from temporalio.common import WorkflowIDReusePolicy
from temporalio.exceptions import ApplicationError
from temporalio.runtime import Runtime
from temporalio.service import RPCError, RPCStatusCode, TLSConfig

from core.settings import Settings
from orchestration.constants import (
    ALL_SEARCH_ATTRIBUTES,
    BATCH_EXECUTION_TIMEOUT,
    SCHEDULER_QUEUE,
    Update,
    batch_search_attributes,
)
from orchestration.types import BatchInput, BatchResult, DecisionInput, DecisionResult


class TemporalSettingsError(ValueError):
    """A Temporal connection setting that cannot be used (a TLS file missing or unreadable)."""


@dataclass(frozen=True)
class TemporalTarget:
    """Where and how to reach Temporal. Every LoreGuard connection (workers, CLI, dashboard, operations) is
    made from one of these, so TLS and the API key apply everywhere or nowhere."""

    address: str
    namespace: str = "default"
    tls: TLSConfig | bool = False
    api_key: str | None = None

    @property
    def secure(self) -> bool:
        return self.tls is not False

    async def connect(self, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
        return await Client.connect(
            self.address,
            namespace=self.namespace,
            tls=self.tls,
            api_key=self.api_key,
            lazy=lazy,
            runtime=runtime,
        )

    def __repr__(self) -> str:  # never the key, nor the private key's bytes
        return f"TemporalTarget({self.address!r}, namespace={self.namespace!r}, tls={self.secure})"


def temporal_target(settings: Settings) -> TemporalTarget:
    """The one place that turns the LOREGUARD_TEMPORAL_* settings into connection options."""
    s = settings
    api_key = s.temporal_api_key.get_secret_value() if s.temporal_api_key else None
    files = (s.temporal_tls_ca_file, s.temporal_tls_cert_file, s.temporal_tls_key_file)
    tls: TLSConfig | bool = s.temporal_tls or bool(api_key)
    if any(files) or s.temporal_tls_server_name:
        tls = TLSConfig(
            server_root_ca_cert=_pem(s.temporal_tls_ca_file, "LOREGUARD_TEMPORAL_TLS_CA_FILE"),
            client_cert=_pem(s.temporal_tls_cert_file, "LOREGUARD_TEMPORAL_TLS_CERT_FILE"),
            client_private_key=_pem(s.temporal_tls_key_file, "LOREGUARD_TEMPORAL_TLS_KEY_FILE"),
            domain=s.temporal_tls_server_name,
        )
    return TemporalTarget(s.target_temporal_address, s.temporal_namespace, tls=tls, api_key=api_key)


def _pem(path: Path | None, variable: str) -> bytes | None:
    if path is None:
        return None
    try:
        return path.read_bytes()
    except OSError as exc:
        raise TemporalSettingsError(f"{variable}: cannot read {path}: {exc.strerror or exc}") from exc


async def connect(settings: Settings, *, lazy: bool = False, runtime: Runtime | None = None) -> Client:
    return await temporal_target(settings).connect(lazy=lazy, runtime=runtime)


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


async def start_batch_workflow(
    client: Client, *, batch_id: int, source_id: int, workflow_id: str
) -> WorkflowHandle[Any, BatchResult]:
    """Start the batch workflow of a batch row that already exists (its id and workflow id come from the caller)."""
    return await client.start_workflow(
        "BatchWorkflow",
        BatchInput(batch_id=batch_id, source_id=source_id),
        id=workflow_id,
        task_queue=SCHEDULER_QUEUE,
        id_reuse_policy=WorkflowIDReusePolicy.REJECT_DUPLICATE,
        search_attributes=batch_search_attributes(batch_id=batch_id, source_id=source_id),
        execution_timeout=BATCH_EXECUTION_TIMEOUT,
        result_type=BatchResult,
    )


class DecisionRefused(Exception):
    """An approve/reject that the batch did not accept, with the reason to show the operator."""


async def send_decision(
    client: Client,
    *,
    workflow_id: str,
    batch_id: int,
    approve: bool,
    actor: str,
    reason: str = "",
    rpc_timeout: timedelta = timedelta(seconds=10),
) -> DecisionResult:
    """Send approve_retry or reject to a failed batch's workflow as an Update; refusals raise DecisionRefused."""
    handle = client.get_workflow_handle(workflow_id)
    update = Update.APPROVE_RETRY if approve else Update.REJECT
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


class CancelRefused(Exception):
    """A cancellation Temporal did not take: the batch's workflow has ended already."""


async def cancel_batch_workflow(
    client: Client,
    *,
    workflow_id: str,
    batch_id: int,
    reason: str,
    rpc_timeout: timedelta = timedelta(seconds=10),
) -> None:
    """Request cancellation of a batch's workflow; its children, activities and row follow (BatchWorkflow)."""
    try:
        await client.get_workflow_handle(workflow_id).cancel(reason=reason, rpc_timeout=rpc_timeout)
    except RPCError as err:
        if err.status == RPCStatusCode.NOT_FOUND or "already completed" in err.message:
            raise CancelRefused(f"batch {batch_id}'s workflow has already ended") from err
        raise


RETENTION = timedelta(days=30)


async def ensure_retention(client: Client, namespace: str) -> None:
    """Closed batches stay visible for 30 days (the dev server's default is 24 h); never lowers it."""
    described = await client.workflow_service.describe_namespace(
        DescribeNamespaceRequest(namespace=namespace)
    )
    if described.config.workflow_execution_retention_ttl.ToTimedelta() >= RETENTION:
        return
    ttl = Duration()
    ttl.FromTimedelta(RETENTION)
    await client.workflow_service.update_namespace(
        UpdateNamespaceRequest(
            namespace=namespace, config=NamespaceConfig(workflow_execution_retention_ttl=ttl)
        )
    )
