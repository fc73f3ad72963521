"""Operator notifications: the log, a Slack-compatible incoming webhook, e-mail over SMTP."""

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


def redact(text: str, secret_url: str) -> str:
    """`text` without the secret URL or its path (the webhook's token), as httpx errors and logs quote them."""
    parts = urlsplit(secret_url)
    for secret in (secret_url, parts.path, parts.query):
        if len(secret) > 1:
            text = text.replace(secret, REDACTED)
    return text


class _RedactSecret(logging.Filter):
    """Rewrites records of a logger (httpx logs every request's URL) so the secret never reaches a handler."""

    def __init__(self, secret_url: str) -> None:
        super().__init__()
        self.secret_url = secret_url

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = redact(message, self.secret_url)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def _redact_in_logs(secret_url: str) -> None:
    for name in ("httpx", "httpcore", log.name):
        logger = logging.getLogger(name)
        if not any(isinstance(f, _RedactSecret) and f.secret_url == secret_url for f in logger.filters):
            logger.addFilter(_RedactSecret(secret_url))


@dataclass(frozen=True)
class Notice:
    subject: str
    text: str
    level: str


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


def deliver(
    settings: Settings, notice: Notice, client: httpx.Client, channels: Sequence[str]
) -> dict[str, str]:
    """Send to every channel; one channel failing does not stop the others. Returns per-channel outcomes."""
    outcome: dict[str, str] = {}
    for channel in channels:
        try:
            if channel == "log":
                send_log(notice)
            elif channel == "webhook" and settings.webhook_url:
                _redact_in_logs(secret_url := settings.webhook_url.get_secret_value())
                send_webhook(secret_url, notice, client)
            elif channel == "email":
                send_email(settings, notice)
            else:
                outcome[channel] = "not configured"
                continue
            outcome[channel] = "sent"
        except (httpx.HTTPError, OSError, smtplib.SMTPException) as err:
            # httpx quotes the URL in its errors; the stored outcome and the log must not carry the token.
            reason = (
                redact(str(err), settings.webhook_url.get_secret_value())
                if settings.webhook_url
                else str(err)
            )
            log.warning("notification via %s failed: %s", channel, reason)
            outcome[channel] = f"failed: {reason}"
    return outcome
