"""`loreguard approve` and `loreguard reject`: decisions on failed batches from the command line."""

from __future__ import annotations

import asyncio
import json
from pathlib import Path

import pytest
from sqlalchemy import select
from temporalio.client import WorkflowFailureError

from data import repository
from data.db import make_engine, make_session_factory
from data.models import AuditEvent, Batch
from orchestration.constants import STATE_AWAITING_APPROVAL
from orchestration.types import BatchProgress
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker, wait_for_state
from tests.support.cli import ME, Loreguard, cli_env
from tests.support.operations import start_refresh


@pytest.fixture
def lg(loreguard: Loreguard) -> Loreguard:
    return loreguard


def add_batch(db_url: str, folder: Path) -> tuple[int, int]:
    """(source id, batch id) of a folder source and a pending batch of it."""
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine).begin() as session:
            source = repository.create_source(session, name=folder.name, kind="folder", location=str(folder))
            batch = repository.create_batch(session, source_id=source.id)
            batch.workflow_id = f"batch-{batch.id}"
            return source.id, batch.id
    finally:
        engine.dispose()


def test_usage_errors_exit_2(lg: Loreguard, tmp_path: Path) -> None:
    _, batch_id = add_batch(lg.db_url, tmp_path / "docs")
    missing_reason = lg("reject", str(batch_id))
    assert missing_reason.returncode == 2 and "--reason" in missing_reason.stderr
    blank_reason = lg("reject", str(batch_id), "--reason", "   ")
    assert blank_reason.returncode == 2 and "needs a reason" in blank_reason.stderr
    unknown = lg("approve", "999")
    assert unknown.returncode == 2 and "no batch with id 999" in unknown.stderr
    blank_actor = lg("approve", str(batch_id), "--actor", " ")
    assert blank_actor.returncode == 2 and "--actor" in blank_actor.stderr
    not_a_number = lg("approve", "abc")
    assert not_a_number.returncode == 2


def test_unreachable_temporal_is_named_and_exits_1(lg: Loreguard, tmp_path: Path) -> None:
    _, batch_id = add_batch(lg.db_url, tmp_path / "docs")
    result = lg("approve", str(batch_id))
    assert result.returncode == 1
    assert "cannot reach Temporal at 127.0.0.1:" in result.stderr


@pytest.mark.temporal
@pytest.mark.slow
async def test_approve_then_reject_and_a_second_decision_is_refused(
    namespace: TemporalNamespace, tmp_path: Path
) -> None:
    lg = Loreguard(tmp_path, cli_env(tmp_path, namespace.address) | namespace.env())
    lg.ok("migrate")
    engine = make_engine(lg.db_url)
    sessions = make_session_factory(engine)
    with sessions.begin() as session:
        source_id = repository.create_source(
            session, name="gone", kind="folder", location=str(tmp_path / "gone")
        ).id
    client = await namespace.connect()

    async def loreguard(*args: str) -> tuple[int, str, str]:
        done = await asyncio.to_thread(lg, *args)  # the worker runs on this loop meanwhile
        return done.returncode, done.stdout, done.stderr

    try:
        async with running_worker(client, pipeline_settings(lg.db_url, namespace)):
            batch_id, handle = await start_refresh(client, sessions, source_id=source_id)
            await wait_for_state(handle, STATE_AWAITING_APPROVAL)

            listed = await loreguard("batches", "--status", "awaiting_approval", "--json")
            assert listed[0] == 0 and [b["id"] for b in json.loads(listed[1])] == [batch_id]

            code, out, err = await loreguard("approve", str(batch_id), "--json")
            assert code == 0, err
            approved = json.loads(out)
            assert (approved["decision"], approved["attempt"], approved["accepted"]) == ("approved", 2, True)
            assert approved["actor"] == ME  # the OS user

            # The approval moved the batch out of "awaiting approval" at once; it waits again only after
            # attempt 2 failed too (the folder is still missing), and only then may the next decision come.
            after = await handle.query("progress", result_type=BatchProgress)
            assert after.state != STATE_AWAITING_APPROVAL or after.attempt == 2, after
            await wait_for_state(handle, STATE_AWAITING_APPROVAL, attempt=2)

            code, out, err = await loreguard(
                "reject", str(batch_id), "--reason", "source retired", "--actor", "ana"
            )
            assert code == 0, err
            assert out.strip().startswith(f"batch {batch_id} rejected by {ME} as ana:")
            with pytest.raises(WorkflowFailureError):
                await handle.result()

            code, out, err = await loreguard("approve", str(batch_id))
            assert code == 1
            assert "refused:" in err and "no longer waiting" in err
            code, out, err = await loreguard("reject", str(batch_id), "--reason", "again", "--json")
            assert code == 1
            assert json.loads(out) == {
                "batch_id": batch_id,
                "accepted": False,
                "refused": f"batch {batch_id} is no longer waiting for a decision",
            }
        with sessions() as session:
            batch = session.get_one(Batch, batch_id)
            assert (batch.status, batch.decision, batch.decided_by, batch.decision_reason) == (
                "failed",
                "rejected",
                f"{ME} as ana",  # --actor is recorded beside the OS user, never alone
                "source retired",
            )
            events = [
                (e.actor, e.action, e.target, e.reason)
                for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
                if e.action in ("approve", "reject")
            ]
        assert events == [
            (ME, "approve", f"batch:{batch_id}", None),
            (f"{ME} as ana", "reject", f"batch:{batch_id}", "source retired"),
        ]
    finally:
        engine.dispose()
