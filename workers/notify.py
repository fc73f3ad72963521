"""Operator notifications: the log, a Slack-compatible incoming webhook, e-mail over SMTP, PagerDuty (Events
API v2: an alert triggers an incident keyed by batch and alert kind, and resolves it when the alert is resolved)."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage
from urllib.parse import urlsplit

import httpx

from core.settings import Settings

log = logging.getLogger("loreguard.alerts")

REDACTED = "[redacted]"


def secrets_of(settings: Settings) -> list[str]:
    """What must never reach a log line or a stored delivery error: the webhook URL (its path and query are
    the token) and the PagerDuty routing key."""
    found: list[str] = []
    if settings.webhook_url:
        url = settings.webhook_url.get_secret_value()
        parts = urlsplit(url)
        found += [url, parts.path, parts.query]
    if settings.pagerduty_routing_key:
        found.append(settings.pagerduty_routing_key.get_secret_value())
    return [secret for secret in found if len(secret) > 1]


def redact(text: str, secrets: Sequence[str]) -> str:
    """`text` without any of the secrets, as httpx errors, server replies and logs may quote them."""
    for secret in sorted(secrets, key=len, reverse=True):  # the whole URL before its path
        text = text.replace(secret, REDACTED)
    return text


class _RedactSecret(logging.Filter):
    """Rewrites records of a logger (httpx logs every request's URL) so a secret never reaches a handler."""

    def __init__(self, secret: str) -> None:
        super().__init__()
        self.secret = secret

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, [self.secret])
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _redact_in_logs(secrets: Sequence[str]) -> None:
    for name in ("httpx", "httpcore", log.name):
        logger = logging.getLogger(name)
        for secret in secrets:
            if not any(isinstance(f, _RedactSecret) and f.secret == secret for f in logger.filters):
                logger.addFilter(_RedactSecret(secret))


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str
    level: str
    key: str | None = None  # the alert's identity (batch and kind): PagerDuty's deduplication key
    kind: str = ""


def alert_key(settings: Settings, batch_id: int | None, kind: str) -> str:
    """One key per batch and alert kind (per Temporal namespace, so two deployments never share one)."""
    subject = f"batch-{batch_id}" if batch_id is not None else "system"
    return f"loreguard:{settings.temporal_namespace}:{subject}:{kind}"


def send_log(notice: Notice) -> None:
    level = logging.ERROR if notice.level in ("error", "critical") else logging.WARNING
    log.log(level, "%s: %s", notice.subject, notice.text)


def send_webhook(url: str, notice: Notice, client: httpx.Client) -> None:
    """Slack incoming-webhook format: a JSON body with `text` (mrkdwn)."""
    response = client.post(url, json={"text": f"*{notice.subject}*\n{notice.text}"})
    response.raise_for_status()


def send_email(settings: Settings, notice: Notice) -> None:
    message = EmailMessage()
    message["Subject"] = notice.subject
    message["From"] = settings.smtp_from
    message["To"] = ", ".join(settings.smtp_to)
    message.set_content(notice.text)
    with smtplib.SMTP(settings.smtp_host, settings.smtp_port, timeout=10) as smtp:
        if settings.smtp_starttls:
            smtp.starttls()
        if settings.smtp_username and settings.smtp_password:
            smtp.login(settings.smtp_username, settings.smtp_password.get_secret_value())
        smtp.send_message(message)


PAGERDUTY_SEVERITY = {"critical": "critical", "error": "error", "warning": "warning"}


class PagerDutyRefused(Exception):
    """The Events API answered with an error (a 4xx/5xx and its reason)."""


def send_pagerduty(
    settings: Settings, client: httpx.Client, *, action: str, dedup_key: str | None, notice: Notice | None
) -> None:
    """One Events API v2 event: `trigger` (with the notice as payload) or `resolve` (by its dedup key)."""
    if not settings.pagerduty_routing_key:
        raise PagerDutyRefused("LOREGUARD_PAGERDUTY_ROUTING_KEY is not set")
    event: dict[str, object] = {
        "routing_key": settings.pagerduty_routing_key.get_secret_value(),
        "event_action": action,
    }
    if dedup_key:
        event["dedup_key"] = dedup_key
    if notice is not None:
        event["payload"] = {
            "summary": f"{notice.subject}: {notice.text}"[:1024],  # the API's limit
            "severity": PAGERDUTY_SEVERITY.get(notice.level, "info"),
            "source": f"loreguard/{settings.temporal_namespace}",
            "component": "batch-pipeline",
            "class": notice.kind or "alert",
            "custom_details": {"message": notice.text},
        }
        event["client"] = "LoreGuard Ops"
        event["client_url"] = settings.public_dashboard_url
    response = client.post(settings.pagerduty_events_url, json=event)
    if response.status_code >= 300:
        try:
            body = response.json()
            why = "; ".join([str(body.get("message", "")), *map(str, body.get("errors", []))]).strip("; ")
        except ValueError:
            why = response.text[:200]
        raise PagerDutyRefused(f"PagerDuty answered {response.status_code}: {why or response.reason_phrase}")


def deliver(
    settings: Settings, notice: Notice, client: httpx.Client, channels: Sequence[str]
) -> dict[str, str]:
    """Send to every channel; one channel failing does not stop the others. Returns per-channel outcomes."""
    secrets = secrets_of(settings)
    _redact_in_logs(secrets)
    outcome: dict[str, str] = {}
    for channel in channels:
        try:
            if channel == "log":
                send_log(notice)
            elif channel == "webhook" and settings.webhook_url:
                send_webhook(settings.webhook_url.get_secret_value(), notice, client)
            elif channel == "email":
                send_email(settings, notice)
            elif channel == "pagerduty" and settings.pagerduty_routing_key:
                send_pagerduty(settings, client, action="trigger", dedup_key=notice.key, notice=notice)
            else:
                outcome[channel] = "not configured"
                continue
            outcome[channel] = "sent"
        except (httpx.HTTPError, OSError, smtplib.SMTPException, PagerDutyRefused) as err:
            # httpx quotes the URL in its errors, a server may echo what it got: stored and logged redacted.
            reason = redact(str(err), secrets)
            log.warning("notification via %s failed: %s", channel, reason)
            outcome[channel] = f"failed: {reason}"
    return outcome


def resolve(settings: Settings, keys: Sequence[str], client: httpx.Client, channels: Sequence[str]) -> None:
    """Tell the channels that keep incidents open (PagerDuty) that these alerts are resolved. Resolving twice is
    harmless, so a retried step may send it again; a failure is logged (redacted) and does not stop the step."""
    if "pagerduty" not in channels or not settings.pagerduty_routing_key:
        return
    secrets = secrets_of(settings)
    _redact_in_logs(secrets)
    for key in keys:
        try:
            send_pagerduty(settings, client, action="resolve", dedup_key=key, notice=None)
            log.info("resolved %s", key)
        except (httpx.HTTPError, OSError, PagerDutyRefused) as err:
            log.warning("resolving %s via pagerduty failed: %s", key, redact(str(err), secrets))
