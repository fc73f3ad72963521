"""One batch per source, when two refreshes of it arrive at the same instant: both pass the check before the
source's row is locked (held together at the step between, reaching Temporal), and the one that locks second
finds the first's batch on its re-check inside the locked transaction. PostgreSQL, where rows are locked."""

from __future__ import annotations

import threading
from collections.abc import Awaitable, Callable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path
from typing import Any, TypeVar

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from core.roles import Role
from core.settings import Settings
from data.models import Batch
from operations import Actor, AlreadyRunning, Context
from operations import batches as batch_ops
from orchestration.gateway import TemporalGateway
from tests.conftest import TemporalNamespace
from tests.support.library import add_source

pytestmark = pytest.mark.temporal
T = TypeVar("T")


class SameInstant(TemporalGateway):
    """A real gateway whose reachability check (the step between the check and the lock) waits for the other
    refresh, so both have passed the check before either locks the source."""

    def __init__(self, address: str, namespace: str, parties: int) -> None:
        super().__init__(address, namespace, retry_after=0.0)
        self.together = threading.Barrier(parties, timeout=30)

    def call(self, fn: Callable[[Client], Awaitable[T]], **kwargs: Any) -> T:
        if getattr(fn, "__name__", "") == "_reachable":
            self.together.wait()
        return super().call(fn, **kwargs)


@pytest.mark.parametrize("db_url", ["postgresql"], indirect=True)
def test_two_refreshes_at_the_same_instant_start_one_batch_and_refuse_the_other(
    namespace: TemporalNamespace, session_factory: sessionmaker[Session], tmp_path: Path
) -> None:
    source_id = add_source(session_factory, tmp_path, name="docs")
    gateway = SameInstant(namespace.address, namespace.name, parties=2)
    settings = Settings(_env_file=None, temporal_address=namespace.address, temporal_namespace=namespace.name)
    ctx = Context(settings, session_factory, gateway)
    operator = Actor("olga", frozenset({Role.OPERATOR}))

    def refresh() -> object:
        try:
            return batch_ops.refresh_source(operator, ctx, source_id)
        except AlreadyRunning as refused:
            return refused

    try:
        with ThreadPoolExecutor(2) as pool:
            outcomes = list(pool.map(lambda _: refresh(), range(2)))
    finally:
        gateway.close()

    with session_factory() as session:
        batches = list(session.scalars(select(Batch.id).where(Batch.source_id == source_id)))
    assert len(batches) == 1, (
        f"two refreshes at the same instant started batches {batches} of one source: the re-check of "
        "'one batch per source' inside the locked transaction (operations/batches.py) is missing"
    )
    refused = [o for o in outcomes if isinstance(o, AlreadyRunning)]
    assert len(refused) == 1 and f"already has batch {batches[0]} in flight" in str(refused[0]), outcomes
