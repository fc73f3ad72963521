"""Operator notifications reach a Slack-compatible webhook and an SMTP server (both real, on loopback)."""

from __future__ import annotations

import email
import email.policy
from collections.abc import Iterator
from dataclasses import dataclass, field
from email.message import EmailMessage
from typing import Any

import httpx
import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, Envelope, Session
from sqlalchemy.orm import Session as DbSession
from sqlalchemy.orm import sessionmaker

from cli.devserver import free_port
from core.settings import Settings
from data import repository
from data.models import Alert
from orchestration.types import AlertInput
from tests.support.http_standins import StaticSite
from workers.notify import Notice, deliver
from workers.steps import build_steps

NOTICE = Notice(
    subject="LoreGuard ERROR: batch 7",
    text="Batch 7 failed at processing (attempt 1): TooManyFailures: 3 of 5 documents failed.",
    level="error",
)


@dataclass
class Received:
    mail_from: str
    rcpt_tos: list[str]
    message: EmailMessage


@dataclass
class Mailbox:
    """An aiosmtpd handler that keeps every message it is sent."""

    messages: list[Received] = field(default_factory=list)

    async def handle_DATA(self, server: SMTP, session: Session, envelope: Envelope) -> str:
        content = envelope.content if isinstance(envelope.content, bytes) else b""
        parsed = email.message_from_bytes(content, policy=email.policy.default)
        assert isinstance(parsed, EmailMessage)
        self.messages.append(Received(str(envelope.mail_from), list(envelope.rcpt_tos), parsed))
        return "250 Message accepted for delivery"


@pytest.fixture
def smtp_server() -> Iterator[tuple[int, Mailbox]]:
    mailbox = Mailbox()
    port = free_port()
    controller = Controller(mailbox, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield port, mailbox
    finally:
        controller.stop()


def settings_for(webhook: str, smtp_port: int, **overrides: Any) -> Settings:
    values: dict[str, Any] = {
        "notify_channels": ["log", "webhook", "email"],
        "webhook_url": webhook,
        "smtp_host": "127.0.0.1",
        "smtp_port": smtp_port,
        "smtp_from": "loreguard@ops.example.org",
        "smtp_to": ["oncall@example.org", "lead@example.org"],
    }
    values.update(overrides)
    return Settings(_env_file=None, **values)


def test_webhook_and_email_receive_the_notice(smtp_server: tuple[int, Mailbox]) -> None:
    port, mailbox = smtp_server
    with StaticSite({"/hooks/T1/B2": (200, "text/plain", "ok")}) as slack, httpx.Client(timeout=5) as client:
        outcome = deliver(
            settings_for(slack.url_for("/hooks/T1/B2"), port), NOTICE, client, ["log", "webhook", "email"]
        )
    assert outcome == {"log": "sent", "webhook": "sent", "email": "sent"}

    (request,) = slack.requests
    assert (request.method, request.path) == ("POST", "/hooks/T1/B2")
    assert request.headers["content-type"] == "application/json"
    assert request.json() == {
        "text": "*LoreGuard ERROR: batch 7*\n"
        "Batch 7 failed at processing (attempt 1): TooManyFailures: 3 of 5 documents failed."
    }

    (mail,) = mailbox.messages
    assert mail.mail_from == "loreguard@ops.example.org"
    assert mail.rcpt_tos == ["oncall@example.org", "lead@example.org"]
    assert mail.message["Subject"] == "LoreGuard ERROR: batch 7"
    assert mail.message["From"] == "loreguard@ops.example.org"
    assert mail.message["To"] == "oncall@example.org, lead@example.org"
    assert mail.message.get_content().strip() == (
        "Batch 7 failed at processing (attempt 1): TooManyFailures: 3 of 5 documents failed."
    )


def test_a_failing_webhook_does_not_stop_the_email(smtp_server: tuple[int, Mailbox]) -> None:
    port, mailbox = smtp_server
    with StaticSite({}, fail_first=1, fail_status=500) as slack, httpx.Client(timeout=5) as client:
        outcome = deliver(settings_for(slack.url_for("/hook"), port), NOTICE, client, ["webhook", "email"])
    assert outcome["webhook"].startswith("failed: ") and "500" in outcome["webhook"]
    assert outcome["email"] == "sent"
    assert [m.message["Subject"] for m in mailbox.messages] == ["LoreGuard ERROR: batch 7"]


def test_an_alert_is_delivered_once_to_the_configured_channels(
    smtp_server: tuple[int, Mailbox], sqlite_sessions: sessionmaker[DbSession], sqlite_url: str
) -> None:
    port, mailbox = smtp_server
    with sqlite_sessions.begin() as session:
        source = repository.create_source(session, name="docs", kind="folder", location="/srv/docs")
        batch_id = repository.create_batch(session, source_id=source.id).id
    alert = AlertInput(
        batch_id=batch_id, kind="batch_failed:attempt-1", level="error", message="Batch failed at ingest."
    )
    with StaticSite({"/hook": (200, "text/plain", "ok")}) as slack:
        steps = build_steps(settings_for(slack.url_for("/hook"), port, database_url=sqlite_url))
        try:
            first = steps.raise_alert(alert)
            again = steps.raise_alert(alert)  # an activity retry must not notify twice
        finally:
            steps.http.close()
    assert first == again == "log: sent; webhook: sent; email: sent"
    assert [r.json() for r in slack.requests] == [
        {"text": f"*LoreGuard ERROR: batch {batch_id}*\nBatch failed at ingest."}
    ]
    assert [(m.rcpt_tos, m.message["Subject"]) for m in mailbox.messages] == [
        (["oncall@example.org", "lead@example.org"], f"LoreGuard ERROR: batch {batch_id}")
    ]
    with sqlite_sessions() as session:
        (stored,) = session.query(Alert).all()
        assert stored.delivery == "log: sent; webhook: sent; email: sent"
