"""Operator notifications: the log, a Slack-compatible incoming webhook, e-mail over SMTP."""

from __future__ import annotations

import logging
import smtplib
from collections.abc import Sequence
from dataclasses import dataclass
from email.message import EmailMessage

import httpx

from core.settings import Settings

log = logging.getLogger("loreguard.alerts")


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
                send_webhook(settings.webhook_url, notice, client)
            elif channel == "email":
                send_email(settings, notice)
            else:
                outcome[channel] = "not configured"
                continue
            outcome[channel] = "sent"
        except (httpx.HTTPError, OSError, smtplib.SMTPException) as err:
            log.warning("notification via %s failed: %s", channel, err)
            outcome[channel] = f"failed: {err}"
    return outcome
