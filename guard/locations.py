"""Checking where a new source points, before it is saved: light enough for the dashboard and the CLI to import
(no parser, no language model, no HTTP client)."""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Sequence
from pathlib import Path
from urllib.parse import urlsplit

from core.urls import CREDENTIALS_REFUSAL, has_userinfo, without_userinfo
from core.vocabulary import SOURCE_KINDS
from guard.folders import FolderRefused, inside_roots
from guard.netpolicy import AddressPolicy

_URL_LIKE = re.compile(r"^[A-Za-z][A-Za-z0-9+.-]*://")


def validate_location(
    kind: str, location: str, *, folder_roots: Sequence[Path], policy: AddressPolicy | None = None
) -> str:
    """The cleaned location for a new source, or ValueError with a message for the person typing it.

    A URL whose host is an IP address the address `policy` forbids is refused here already; a host name is
    checked when it is fetched (its addresses can change), and the preview says so then.
    """
    cleaned = location.strip()
    if not cleaned:
        raise ValueError("location must not be empty")
    if _URL_LIKE.match(cleaned) and has_userinfo(cleaned):
        # Checked first, and the message never repeats the URL: the refusal is shown and may be logged.
        raise ValueError(f"{without_userinfo(cleaned)}: {CREDENTIALS_REFUSAL}")
    if kind == "folder":
        if _URL_LIKE.match(cleaned):
            # Path("https://x/feed.xml") would turn into a mangled relative path under the working folder.
            raise ValueError(
                f"{cleaned} is a URL, not a folder; choose the kind feed (RSS/Atom) or web (one page) for it"
            )
        folder = Path(cleaned).expanduser()
        try:
            inside_roots(folder, folder_roots)
        except FolderRefused as exc:
            raise ValueError(exc.message) from exc
        if not folder.exists():
            raise ValueError(f"folder {folder} does not exist")
        if not folder.is_dir():
            raise ValueError(f"{folder} is not a folder")
        return str(folder.resolve())
    if kind in ("feed", "web"):
        parts = urlsplit(cleaned)
        if parts.scheme.lower() not in ("http", "https"):
            raise ValueError(f"{cleaned} is not an http(s) URL")
        if not parts.hostname:
            raise ValueError(f"{cleaned} has no host name")
        if policy is not None:
            try:
                address = ipaddress.ip_address(parts.hostname)
            except ValueError:
                return cleaned
            refusal = policy.refusal(parts.hostname, address)
            if refusal is not None:
                raise ValueError(refusal)
        return cleaned
    raise ValueError(f"unknown source kind {kind!r}; expected one of {', '.join(SOURCE_KINDS)}")
