"""Notifications keep the webhook URL secret: its token never reaches a log line or a stored delivery error."""

from __future__ import annotations

import logging

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.settings import Settings
from data.models import Alert
from orchestration.types import AlertInput
from tests.support.http_standins import StaticSite
from workers.steps import build_steps

TOKEN = "T0001/B0002/s3cr3tW3bh00kT0k3n"


@pytest.mark.parametrize("status", [404, 500])
def test_a_failing_webhook_delivery_is_recorded_without_its_token(
    sqlite_sessions: sessionmaker[Session], sqlite_url: str, caplog: pytest.LogCaptureFixture, status: int
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs every request's URL at INFO, httpcore more at DEBUG
    with StaticSite({f"/services/{TOKEN}": (status, "text/plain", "no_service")}) as slack:
        settings = Settings(
            database_url=sqlite_url,
            notify_channels=["log", "webhook"],
            webhook_url=slack.url_for(f"/services/{TOKEN}"),
        )
        steps = build_steps(settings)
        try:
            summary = steps.raise_alert(
                AlertInput(batch_id=None, kind="sla_warning", level="warning", message="batch 7 is late")
            )
        finally:
            steps.http.close()
        assert slack.calls == 1  # it was really sent, to the secret URL

    with sqlite_sessions() as session:
        stored = session.scalars(select(Alert.delivery)).one()
    assert stored == summary
    assert summary.startswith("log: sent; webhook: failed:") and str(status) in summary
    assert "[redacted]" in summary
    logged = "\n".join(record.getMessage() for record in caplog.records)
    assert "notification via webhook failed" in logged
    for text in (summary, logged, repr(settings), str(settings.model_dump())):
        assert "s3cr3tW3bh00kT0k3n" not in text


def test_the_webhook_channel_still_needs_a_url() -> None:
    with pytest.raises(ValueError, match="LOREGUARD_WEBHOOK_URL is needed"):
        Settings(notify_channels=["webhook"])
