"""Checks on the dashboard's sign-in configuration (the [auth] section of a Streamlit secrets file).

Pure functions, shared by `loreguard dashboard` (which refuses to start on a bad configuration) and the
dashboard itself. The rule: without sign-in the dashboard serves only loopback, as a labelled local admin;
outside development a real cookie secret is required.
"""

from __future__ import annotations

import ipaddress
import tomllib
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Any

PLACEHOLDERS = ("change", "placeholder", "example", "secret", "xxx", "todo", "replace")
MIN_COOKIE_SECRET = 32


def loopback(address: str) -> bool:
    """True for an address only this machine can reach (127.0.0.0/8, ::1, localhost)."""
    if address == "localhost":
        return True  # an empty address is every interface, not loopback
    try:
        return ipaddress.ip_address(address).is_loopback
    except ValueError:
        return False


def where(address: str) -> str:
    return address or "every interface (an empty or unset address)"


def read_auth(files: Iterable[Path]) -> Mapping[str, Any] | None:
    """The [auth] section Streamlit would use from these secrets files (later files win), or None."""
    auth: dict[str, Any] | None = None
    for path in files:
        if not path.is_file():
            continue
        with path.open("rb") as f:
            section = tomllib.load(f).get("auth")
        if isinstance(section, dict):
            auth = {**(auth or {}), **section}
    return auth


def auth_problems(auth: Mapping[str, Any] | None, *, address: str, environment: str) -> list[str]:
    """What is wrong with starting the dashboard on `address` with this [auth] section (empty: fine)."""
    if auth is None:
        if loopback(address):
            return []
        return [
            f"the dashboard would listen on {where(address)} without sign-in. Configure OpenID Connect in the [auth] "
            "section of .streamlit/secrets.toml (or the file LOREGUARD_DASHBOARD_SECRETS names; see README, "
            "'Sign-in and roles'), or keep LOREGUARD_DASHBOARD_ADDRESS=127.0.0.1 (streamlit run: "
            "--server.address 127.0.0.1)"
        ]
    problems = []
    for key in ("redirect_uri", "cookie_secret"):
        if not str(auth.get(key) or "").strip():
            problems.append(f"[auth] {key} is missing")
    providers = [v for v in auth.values() if isinstance(v, dict)]
    if not (auth.get("client_id") and auth.get("server_metadata_url")) and not any(
        p.get("client_id") and p.get("server_metadata_url") for p in providers
    ):
        problems.append("[auth] needs client_id, client_secret and server_metadata_url (of your provider)")
    secret = str(auth.get("cookie_secret") or "")
    if environment != "development" and secret and weak(secret):
        problems.append(
            f"[auth] cookie_secret must be a random secret of at least {MIN_COOKIE_SECRET} characters in "
            f"{environment} (generate one with `python -c 'import secrets; print(secrets.token_hex(32))'`)"
        )
    return problems


def weak(secret: str) -> bool:
    lowered = secret.lower()
    return len(secret) < MIN_COOKIE_SECRET or any(word in lowered for word in PLACEHOLDERS)
