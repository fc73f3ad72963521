"""The pagerduty channel speaks PagerDuty's Events API v2 to a loopback stand-in: an alert triggers an incident
keyed by batch and alert kind; a decision on the failed batch, or the end of a late batch, resolves it; the
routing key never reaches a log line or a stored delivery error."""

from __future__ import annotations

import logging
import threading
from collections.abc import Iterator
from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import SecretStr
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from core.vocabulary import ALERT_SLA_WARNING, BatchStatus
from data import repository
from data.models import Alert
from orchestration.types import AlertInput, RecordDecisionInput, SlaCheckInput
from tests.support.http_standins import LoopbackServer, RecordedRequest, Reply
from workers.monitoring import check_sla
from workers.steps import BatchSteps, build_steps

ROUTING_KEY = "R0UT1NGk3ys3cr3t0000000000000000"  # 32 characters, as PagerDuty's integration keys


class PagerDutyStandIn(LoopbackServer):
    """`POST /v2/enqueue` as the Events API v2 answers it: 202 with the dedup key, or 400 "invalid event" with
    the reasons (which quote the routing key it got, so redaction is put to the test). Keeps the incidents."""

    def __init__(self, routing_key: str = ROUTING_KEY) -> None:
        super().__init__()
        self.routing_key = routing_key
        self.open: dict[str, dict[str, Any]] = {}  # dedup key -> the trigger's payload
        self.resolved: list[str] = []
        self._incidents = threading.Lock()

    def events(self) -> list[dict[str, Any]]:
        return [request.json() for request in self.requests]

    def respond(self, request: RecordedRequest) -> Reply:
        if request.method != "POST" or request.path != "/v2/enqueue":
            return Reply.of_json(404, {"status": "not found"})
        event = request.json()
        errors = []
        if event.get("routing_key") != self.routing_key:
            errors.append(f"Invalid routing key: {event.get('routing_key')}")
        action = event.get("event_action")
        if action not in ("trigger", "acknowledge", "resolve"):
            errors.append("'event_action' is invalid")
        payload = event.get("payload") or {}
        if action == "trigger":
            for field in ("summary", "source", "severity"):
                if not payload.get(field):
                    errors.append(f"'payload.{field}' is missing or blank")
            if payload.get("severity") not in ("critical", "error", "warning", "info"):
                errors.append("'payload.severity' is invalid")
        elif not event.get("dedup_key"):
            errors.append("'dedup_key' is required for resolve and acknowledge")
        if errors:
            return Reply.of_json(
                400, {"status": "invalid event", "message": "Event object is invalid", "errors": errors}
            )
        key = event.get("dedup_key") or f"generated-{len(self.requests)}"
        with self._incidents:
            if action == "trigger":
                self.open.setdefault(key, payload)
            elif action == "resolve" and self.open.pop(key, None) is not None:
                self.resolved.append(key)
        return Reply.of_json(202, {"status": "success", "message": "Event processed", "dedup_key": key})


@pytest.fixture
def pagerduty() -> Iterator[PagerDutyStandIn]:
    with PagerDutyStandIn() as server:
        yield server


def make_steps(sqlite_url: str, pagerduty: PagerDutyStandIn, routing_key: str = ROUTING_KEY) -> BatchSteps:
    settings = Settings(
        _env_file=None,
        database_url=sqlite_url,
        temporal_namespace="ops",
        notify_channels=["log", "pagerduty"],
        pagerduty_routing_key=SecretStr(routing_key),
        pagerduty_events_url=pagerduty.url_for("/v2/enqueue"),
        public_dashboard_url="https://loreguard.example.org",
    )
    return build_steps(settings)


@pytest.fixture
def batch_id(sqlite_sessions: sessionmaker[Session]) -> int:
    with sqlite_sessions.begin() as session:
        source = repository.create_source(
            session, name="feeds", kind="feed", location="https://example.org/f"
        )
        batch = repository.create_batch(session, source_id=source.id)
        repository.mark_batch_running(session, batch_id=batch.id, workflow_id=f"batch-{batch.id}")
        return batch.id


def test_a_failed_batch_triggers_once_and_the_decision_resolves_it(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session], pagerduty: PagerDutyStandIn, batch_id: int
) -> None:
    steps = make_steps(sqlite_url, pagerduty)
    alert = AlertInput(
        batch_id=batch_id,
        kind="batch_failed:attempt-0",
        level="error",
        message=f"Batch {batch_id} failed at processing (attempt 0): TooManyFailures: 3 of 5 documents failed.",
    )
    try:
        summary = steps.raise_alert(alert)
        assert steps.raise_alert(alert) == summary  # a retried activity does not page twice
        key = f"loreguard:ops:batch-{batch_id}:batch_failed:attempt-0"
        (trigger,) = pagerduty.events()
        assert trigger == {
            "routing_key": ROUTING_KEY,
            "event_action": "trigger",
            "dedup_key": key,
            "payload": {
                "summary": f"LoreGuard ERROR: batch {batch_id}: {alert.message}",
                "severity": "error",
                "source": "loreguard/ops",
                "component": "batch-pipeline",
                "class": "batch_failed:attempt-0",
                "custom_details": {"message": alert.message},
            },
            "client": "LoreGuard Ops",
            "client_url": "https://loreguard.example.org",
        }
        assert summary == "log: sent; pagerduty: sent" and set(pagerduty.open) == {key}

        steps.record_decision(
            RecordDecisionInput(batch_id=batch_id, decision="approved", actor="ana", reason="", attempt=0)
        )
        resolve = pagerduty.events()[-1]
        assert resolve == {"routing_key": ROUTING_KEY, "event_action": "resolve", "dedup_key": key}
        assert pagerduty.resolved == [key] and not pagerduty.open
        # Recording the decision again (a retried activity) sends nothing more: nothing is open any longer.
        steps.record_decision(
            RecordDecisionInput(batch_id=batch_id, decision="approved", actor="ana", reason="", attempt=0)
        )
        assert len(pagerduty.requests) == 2
    finally:
        steps.http.close()
    with sqlite_sessions() as session:
        assert session.scalars(select(Alert.resolved_at)).one() is not None


def test_an_sla_alert_is_resolved_when_its_batch_ends(
    sqlite_url: str, sqlite_sessions: sessionmaker[Session], pagerduty: PagerDutyStandIn, batch_id: int
) -> None:
    steps = make_steps(sqlite_url, pagerduty)
    try:
        steps.raise_alert(
            AlertInput(batch_id=batch_id, kind=ALERT_SLA_WARNING, level="warning", message="batch is late")
        )
        key = f"loreguard:ops:batch-{batch_id}:{ALERT_SLA_WARNING}"
        assert pagerduty.events()[0]["payload"]["severity"] == "warning"
        now = datetime.now(UTC).isoformat()
        assert check_sla(steps, SlaCheckInput(now_iso=now)).resolved == 0  # still running: stays open
        assert set(pagerduty.open) == {key}

        with sqlite_sessions.begin() as session:
            repository.finish_batch(session, batch_id=batch_id, status=BatchStatus.COMPLETED)
        assert check_sla(steps, SlaCheckInput(now_iso=now)).resolved == 1
        assert pagerduty.events()[-1] == {
            "routing_key": ROUTING_KEY,
            "event_action": "resolve",
            "dedup_key": key,
        }
        assert pagerduty.resolved == [key]
        check_sla(steps, SlaCheckInput(now_iso=now))
        assert len(pagerduty.requests) == 2  # resolved once
    finally:
        steps.http.close()


def test_a_refused_event_is_recorded_without_the_routing_key(
    sqlite_url: str,
    sqlite_sessions: sessionmaker[Session],
    pagerduty: PagerDutyStandIn,
    batch_id: int,
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.DEBUG)
    wrong = "Wr0ngR0ut1ngK3yTh4tIsS3cr3t00000"
    steps = make_steps(sqlite_url, pagerduty, routing_key=wrong)
    try:
        summary = steps.raise_alert(
            AlertInput(batch_id=batch_id, kind="batch_failed:attempt-0", level="error", message="it broke")
        )
        steps.record_decision(
            RecordDecisionInput(batch_id=batch_id, decision="rejected", actor="ana", reason="no", attempt=0)
        )
    finally:
        steps.http.close()
    assert pagerduty.calls == 2 and not pagerduty.open  # both were really sent, both refused
    assert summary.startswith("log: sent; pagerduty: failed: PagerDuty answered 400: Event object is invalid")
    assert "Invalid routing key: [redacted]" in summary
    with sqlite_sessions() as session:
        assert session.scalars(select(Alert.delivery)).one() == summary
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "notification via pagerduty failed" in logged and "via pagerduty failed" in logged
    assert "resolving loreguard:ops:batch-" in logged
    assert wrong not in summary and wrong not in logged


def test_the_pagerduty_channel_needs_a_routing_key() -> None:
    with pytest.raises(ValueError, match="LOREGUARD_PAGERDUTY_ROUTING_KEY is needed"):
        Settings(_env_file=None, notify_channels=["pagerduty"])
    settings = Settings(
        _env_file=None, notify_channels=["pagerduty"], pagerduty_routing_key=SecretStr(ROUTING_KEY)
    )
    assert ROUTING_KEY not in repr(settings) and ROUTING_KEY not in str(settings.model_dump())
