"""Credentials in a URL (`http://user:password@host/`): how to spot them, how to show such a URL without them,
and a log filter so they never reach a handler (httpx logs every request line at INFO)."""

from __future__ import annotations

import logging
import re
from urllib.parse import urlsplit

HIDDEN = "***"
# scheme://<userinfo>@ in any text (a log line, an error): userinfo is everything up to the authority's last "@".
_USERINFO = re.compile(r"(?P<scheme>[A-Za-z][A-Za-z0-9+.-]*://)(?P<userinfo>[^/?#\s]*)@")
CREDENTIALS_REFUSAL = (
    "the URL holds credentials (user:password@ before the host), which would be sent to every server it "
    "redirects to and shown in logs, the audit log and the Sources page; a URL with credentials is not "
    "supported: use a URL that needs none (a feed's public or token-free address, or an internal host "
    "LOREGUARD_ALLOWED_HOSTS allows)"
)


def has_userinfo(url: str) -> bool:
    """True when the URL's authority carries a user name or password (any "@" before the host)."""
    try:
        parts = urlsplit(url.strip())
    except ValueError:
        return _USERINFO.search(url) is not None
    return "@" in parts.netloc or _USERINFO.match(url.strip()) is not None


def without_userinfo(text: str) -> str:
    """`text` with every URL's user name and password replaced by ***."""
    return _USERINFO.sub(lambda m: f"{m['scheme']}{HIDDEN}@", text)


class HideUserinfo(logging.Filter):
    """Rewrites a record whose message holds a URL with credentials, before any handler sees it."""

    def filter(self, record: logging.LogRecord) -> bool:
        message = record.getMessage()
        cleaned = without_userinfo(message)
        if cleaned != message:
            record.msg, record.args = cleaned, None
        return True


def hide_userinfo_in_logs(
    names: tuple[str, ...] = ("httpx", "httpcore.connection", "httpcore.http11", "httpcore.proxy"),
) -> None:
    """Install the filter on the HTTP client's loggers (idempotent; a filter acts only where a record is made)."""
    for name in names:
        logger = logging.getLogger(name)
        if not any(isinstance(f, HideUserinfo) for f in logger.filters):
            logger.addFilter(HideUserinfo())
