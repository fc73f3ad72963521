"""Approvals: the failed batches awaiting a decision, the confirmation dialogs, and decisions sent as Updates."""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Awaitable, Iterator
from contextlib import contextmanager
from datetime import timedelta
from pathlib import Path
from typing import Any, TypeVar

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest
from temporalio.client import Client, WorkflowFailureError, WorkflowHandle

from dashboard.approvals import time_left
from data import repository
from data.models import AuditEvent, Batch, utcnow
from orchestration.constants import STATE_AWAITING_APPROVAL
from tests.conftest import TemporalNamespace
from tests.dashboard.conftest import OPERATOR, OpenPage, unescaped
from tests.dashboard.seed import HOSTILE, Seeded
from tests.support.batches import pipeline_settings, running_worker, wait_for_state
from tests.support.operations import decide, start_refresh

T = TypeVar("T")


def _waiting_b4(sessions: sessionmaker[Session], seeded: Seeded) -> int:
    """Give the seeded awaiting batch what the workflow records when it stops to wait."""
    b4 = seeded.batches["b4"]
    with sessions.begin() as session:
        batch = session.get_one(Batch, b4)
        batch.attempt = 2
        batch.compensation = "quarantined 1 stored document(s) until a retry succeeds"
        batch.decision_deadline = utcnow() + timedelta(hours=5, minutes=30)
        # as the workflow records a decision: on the batch row and in the decision history
        repository.record_decision(
            session,
            batch_id=seeded.batches["b1"],
            decision="rejected",
            actor="ana",
            reason="source retired",
            attempt=1,
        )
    return b4


def table(at: AppTest, column: str) -> pd.DataFrame:
    """The page's table that has `column` (unselectable dataframes carry no key in AppTest)."""
    frames = [d.value for d in at.dataframe if column in d.value.columns]
    assert len(frames) == 1, f"{len(frames)} tables with a {column!r} column"
    frame: pd.DataFrame = frames[0]
    return frame


def texts(at: AppTest) -> str:
    parts = [unescaped(m.value) for m in (*at.markdown, *at.caption)] + [t.value for t in at.text]
    return "\n".join(parts)


def test_time_left() -> None:
    now = utcnow()
    assert time_left(now + timedelta(hours=23, minutes=59, seconds=30), now) == "23 h 59 min left"
    assert time_left(now + timedelta(minutes=7), now) == "7 min left"
    assert time_left(now + timedelta(seconds=20), now) == "20 s left"
    assert time_left(now - timedelta(seconds=1), now) == "timed out (rejecting)"
    assert time_left(None, now) == "unknown"


def test_waiting_batches_show_what_an_operator_needs(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b4 = _waiting_b4(dashboard_env, seeded)
    at = open_page("approvals")

    waiting = table(at, "time left")
    assert list(waiting["batch"]) == [b4]
    row = waiting.iloc[0]
    assert row["source"] == HOSTILE  # dataframes show text literally
    assert (row["attempt"], row["failed stage"], row["error type"]) == (2, "processing", "TooManyFailures")
    assert row["error"] == f"2 of 3 documents failed: {HOSTILE}"
    assert row["compensation"].startswith("quarantined 1 stored")
    assert row["time left"] in ("5 h 29 min left", "5 h 30 min left")

    failed = table(at, "stage")
    assert list(failed["stage"]) == ["normalize", "normalize"]
    assert failed["reason"][0].startswith("undecodable bytes in document")
    shown = texts(at)
    assert f"Error: TooManyFailures: 2 of 3 documents failed: {HOSTILE}" in shown
    assert f"of source **{HOSTILE}**" in shown  # the name escaped inside the bold: it reads as typed

    decided = table(at, "decision")
    assert list(decided["batch"]) == [seeded.batches["b1"]]
    assert (decided["decision"][0], decided["by"][0], decided["reason"][0]) == (
        "rejected",
        "ana",
        "source retired",
    )


def test_reject_needs_a_reason_and_cancel_closes_the_dialog(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    _waiting_b4(dashboard_env, seeded)
    at = open_page("approvals")
    at.button(key="reject").click().run()
    assert at.button(key="decision_confirmed").label == "Reject"
    at.button(key="decision_confirmed").click().run()
    assert "A rejection needs a reason." in [e.value for e in at.error]
    at.button(key="decision_cancelled").click().run()
    assert not any(b.key == "decision_confirmed" for b in at.button)


def test_a_decision_that_cannot_be_sent_says_why(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    """Temporal is not there in this environment: each selected batch gets its own refusal."""
    b4 = _waiting_b4(dashboard_env, seeded)
    at = open_page("approvals")
    at.multiselect(key="bulk_batches").select(b4).run()
    at.button(key="bulk_approve").click().run()
    assert at.button(key="decision_confirmed").label == "Approve retry"
    at.button(key="decision_confirmed").click().run()
    errors = [unescaped(e.value) for e in at.error]
    assert len(errors) == 1 and errors[0].startswith(
        f"Batch {b4}: not sent. Temporal unavailable at 127.0.0.1:"
    )
    with dashboard_env() as session:
        assert session.get_one(Batch, b4).decision is None


# --- against a real Temporal dev server and worker ---------------------------------------------------------


class Stack:
    """A client and an in-process worker on an event loop of their own (AppTest runs in this thread)."""

    def __init__(self, loop: asyncio.AbstractEventLoop, client: Client) -> None:
        self.loop = loop
        self.client = client

    def run(self, coro: Awaitable[T], timeout: float = 90) -> T:
        async def wrapped() -> T:
            return await coro

        return asyncio.run_coroutine_threadsafe(wrapped(), self.loop).result(timeout)


@contextmanager
def live_stack(namespace: TemporalNamespace, db_url: str) -> Iterator[Stack]:
    loop = asyncio.new_event_loop()
    thread = threading.Thread(target=loop.run_forever, daemon=True)
    thread.start()

    async def connect() -> Client:
        return await namespace.connect()

    stack = Stack(loop, asyncio.run_coroutine_threadsafe(connect(), loop).result(30))
    worker = running_worker(stack.client, pipeline_settings(db_url, namespace))
    stack.run(worker.__aenter__())
    try:
        yield stack
    finally:
        stack.run(worker.__aexit__(None, None, None))
        loop.call_soon_threadsafe(loop.stop)
        thread.join(10)


def _awaiting_batch(stack: Stack, sessions: sessionmaker[Session], folder: Path) -> tuple[int, Any]:
    with sessions.begin() as session:
        source_id = repository.create_source(
            session, name=folder.name, kind="folder", location=str(folder)
        ).id
    batch_id, handle = stack.run(start_refresh(stack.client, sessions, source_id=source_id))
    stack.run(wait_for_state(handle, STATE_AWAITING_APPROVAL))
    return batch_id, handle


@pytest.mark.temporal
@pytest.mark.slow
def test_reject_reaches_the_workflow_and_a_stale_decision_is_refused(
    namespace: TemporalNamespace,
    dashboard_env: sessionmaker[Session],
    sqlite_url: str,
    open_page: OpenPage,
    monkeypatch: pytest.MonkeyPatch,
    tmp_path: Path,
) -> None:
    for key, value in namespace.env().items():
        monkeypatch.setenv(key, value)
    with live_stack(namespace, sqlite_url) as stack:
        first, first_handle = _awaiting_batch(stack, dashboard_env, tmp_path / "gone")
        at = open_page("approvals")
        assert list(table(at, "time left")["batch"]) == [first]
        row = table(at, "time left").iloc[0]
        assert (row["failed stage"], row["error type"]) == ("ingest", "InvalidSource")
        assert row["time left"].endswith("min left")

        at.button(key="reject").click().run()
        at.text_area(key="decision_reason").input("folder <b>retired</b>").run()
        at.button(key="decision_confirmed").click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert [unescaped(s.value) for s in at.success] == [
            f"Batch {first}: rejected. batch {first} rejected: it ends failed."
        ]
        with pytest.raises(WorkflowFailureError):
            stack.run(_result(first_handle))
        at.run()  # the workflow records the decision after answering the Update
        decided = table(at, "decision")
        assert (decided["decision"][0], decided["by"][0], decided["reason"][0]) == (
            "rejected",
            OPERATOR,
            "folder <b>retired</b>",
        )
        assert not any(b.key == "approve" for b in at.button)  # nothing waits any more

        # A page opened while the batch waited, after someone else decided: the Update is refused.
        second, second_handle = _awaiting_batch(stack, dashboard_env, tmp_path / "gone2")
        at = open_page("approvals")
        stack.run(
            decide(stack.client, dashboard_env, batch_id=second, approve=False, actor="ana", reason="dup")
        )
        at.button(key="approve").click().run()
        at.button(key="decision_confirmed").click().run()
        errors = [unescaped(e.value) for e in at.error]
        assert len(errors) == 1 and errors[0].startswith(f"Batch {second}: refused: ")
        assert "no longer waiting" in errors[0] or "already rejected by ana" in errors[0]
        with pytest.raises(WorkflowFailureError):
            stack.run(_result(second_handle))

    with dashboard_env() as session:
        events = [
            (e.actor, e.action, e.target, e.reason)
            for e in session.query(AuditEvent).order_by(AuditEvent.id)
            if e.action in ("approve", "reject")
        ]
    assert events == [
        (OPERATOR, "reject", f"batch:{first}", "folder <b>retired</b>"),
        ("ana", "reject", f"batch:{second}", "dup"),
    ]  # recorded once each, by the workflow


async def _result(handle: WorkflowHandle[Any, Any]) -> Any:
    return await handle.result()


def test_bulk_decision_on_a_filter_shows_the_count_before_confirming(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    b4 = _waiting_b4(dashboard_env, seeded)
    at = open_page("approvals")
    source = next(i for i in at.selectbox(key="filter_source").options)  # "all sources" first
    assert source == "all sources"
    at.selectbox(key="filter_source").select_index(1).run()
    assert any(
        f"1 batch(es) match: every batch of source {HOSTILE} awaiting approval." in unescaped(c.value)
        for c in at.caption
    )
    at.button(key="filter_approve").click().run()
    assert at.button(key="decision_confirmed").label == "Approve retry"
    assert any("1 batch(es): every batch of source" in unescaped(m.value) for m in at.markdown)
    at.button(key="decision_confirmed").click().run()
    assert [unescaped(e.value).split(".")[0] for e in at.error] == [f"Batch {b4}: not sent"]


def test_navigation_counts_what_waits(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    _waiting_b4(dashboard_env, seeded)
    at = open_page("overview")
    labels = [p.proto.label for p in at.sidebar.get("page_link")]
    assert "1 batch(es) awaiting approval" in labels
    assert "2 open SLA breach(es)" in labels  # the seed's warning on b5 and critical on b4
