"""Fixtures for the dashboard's AppTest suite: a migrated SQLite library, settings through the environment,
Streamlit caches (and the Temporal gateways they hold) emptied around every test."""

from __future__ import annotations

import base64
import json
import os
import re
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import streamlit as st
from sqlalchemy.orm import Session, sessionmaker
from streamlit.runtime.media_file_manager import MediaFileManager
from streamlit.runtime.memory_media_file_storage import MemoryMediaFileStorage
from streamlit.testing.v1 import AppTest
from streamlit.testing.v1 import app_test as app_test_module

from cli.devserver import free_port
from dashboard.text import WORD_JOINER
from tests.dashboard.seed import Seeded, seed_library

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
OPERATOR = "ops-tester@example.org"  # signed in through OpenID Connect, an admin

PAGES = {
    "overview": "../pages/overview.py",
    "sources": "../pages/sources.py",
    "batches": "../pages/batches.py",
    "library": "../pages/library.py",
    "review": "../pages/review.py",
    "approvals": "../pages/approvals.py",
    "audit": "../pages/audit.py",
    "workers": "../pages/workers.py",
    "sla": "../pages/sla.py",
    "users": "../pages/users.py",
    "document": "../pages/document.py",
}


def clear_streamlit_caches() -> None:
    st.cache_data.clear()
    st.cache_resource.clear()  # closes the Temporal gateways and disposes the engines (on_release)


@pytest.fixture
def dashboard_env(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path, sqlite_sessions: sessionmaker[Session], sqlite_url: str
) -> Iterator[sessionmaker[Session]]:
    """The dashboard's settings point at a fresh migrated SQLite library and at a Temporal that is not there.

    Yields a session factory over that library, for seeding and for checking what the pages wrote.
    """
    for key in [k for k in os.environ if k.startswith("LOREGUARD_") and k != "LOREGUARD_REQUIRE_ALL"]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LOREGUARD_DATABASE_URL", sqlite_url)
    monkeypatch.setenv("LOREGUARD_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", f"127.0.0.1:{free_port()}")  # nobody listens
    monkeypatch.setenv("LOREGUARD_TEMPORAL_UI_PORT", "18233")
    # Sources in the test's folder and on the loopback stand-ins, which the policy forbids by default.
    monkeypatch.setenv("LOREGUARD_FOLDER_ROOTS", json.dumps([str(tmp_path)]))
    monkeypatch.setenv("LOREGUARD_ALLOWED_HOSTS", '["127.0.0.1"]')
    clear_streamlit_caches()
    yield sqlite_sessions
    clear_streamlit_caches()


@pytest.fixture
def seeded(dashboard_env: sessionmaker[Session]) -> Seeded:
    return seed_library(dashboard_env)


OpenPage = Callable[..., AppTest]

# Sign-in is configured ([auth] in the secrets) and the person signed in; what st.user holds after a real
# OpenID Connect sign-in (the browser tests sign in through a real provider).
AUTH = {
    "redirect_uri": "http://127.0.0.1:8501/oauth2callback",
    "cookie_secret": "0123456789abcdef0123456789abcdef",
    "client_id": "loreguard-dashboard",
    "client_secret": "test-client-secret",
    "server_metadata_url": "http://127.0.0.1:9/.well-known/openid-configuration",
}
ISSUER = "http://127.0.0.1:9"  # the provider of AUTH's server_metadata_url
ADMIN_USER = {
    "is_logged_in": True,
    "iss": ISSUER,
    "sub": "ops-tester",
    "email": OPERATOR,
    "email_verified": True,
    "groups": ["admin"],
}


def person(*roles: str) -> dict[str, Any]:
    email = f"{'-'.join(roles) or 'nobody'}@example.org"
    return {
        "is_logged_in": True,
        "iss": ISSUER,
        "sub": email.split("@")[0],
        "email": email,
        "email_verified": True,
        "groups": list(roles),
    }


def signed_in(at: AppTest, user: dict[str, Any] | None) -> AppTest:
    """`at` with sign-in configured and `user` signed in (None: sign-in configured, nobody signed in)."""
    at.secrets["auth"] = AUTH
    at.user = dict(user) if user is not None else {"is_logged_in": False}
    return at


@pytest.fixture
def open_page(dashboard_env: sessionmaker[Session]) -> OpenPage:
    """open_page("batches", batch="3") renders a page through the app's router, as a browser would."""

    def open_(page: str, *, user: dict[str, Any] | None = None, **query: str) -> AppTest:
        at = signed_in(AppTest.from_file(str(APP), default_timeout=30), user or ADMIN_USER)
        at.run()
        for key, value in query.items():
            at.query_params[key] = value
        at.switch_page(PAGES[page]).run()
        assert not at.exception, [e.value for e in at.exception]
        return at

    return open_


def plotly_figures(at: AppTest) -> dict[str, dict[str, Any]]:
    """The page's plotly charts by key, as the figure JSON the browser receives."""
    figures: dict[str, dict[str, Any]] = {}
    for element in at.get("plotly_chart"):
        proto = element.proto
        key = proto.id.rsplit("-", 1)[-1] if proto.id else str(len(figures))
        figures[key] = json.loads(proto.spec)
    return figures


def values(data: Any) -> list[Any]:
    """A trace's x or y as a list: plotly sends numeric arrays as base64 typed arrays ({dtype, bdata})."""
    if isinstance(data, dict) and "bdata" in data:
        return np.frombuffer(base64.b64decode(data["bdata"]), dtype=np.dtype(data["dtype"])).tolist()
    return list(data)


def unescaped(markdown: str) -> str:
    """What a reader sees of escaped Markdown text (the word joiners that stop autolinks are invisible)."""
    return re.sub(r"\\(.)", r"\1", markdown).replace(WORD_JOINER, "")


@dataclass(frozen=True)
class Download:
    data: bytes
    mimetype: str
    file_name: str | None


class Downloads:
    """What a page's download buttons serve when clicked, read from the media files of the AppTest run.

    AppTest keeps each run's files in a fresh in-memory MediaFileManager; the `downloads` fixture records
    them, and `served(at, key)` fetches the button's file (calling a deferred button's data callable, as
    Streamlit does on a click) instead of recomputing what the page should have passed.
    """

    def __init__(self) -> None:
        self.managers: list[MediaFileManager] = []

    def served(self, at: AppTest, key: str) -> Download:
        (button,) = [b for b in at.get("download_button") if getattr(b, "key", None) == key]
        manager = self.managers[-1]
        proto = button.proto
        url = manager.execute_deferred(proto.deferred_file_id) if proto.deferred_file_id else proto.url
        storage = manager._storage  # the run's MemoryMediaFileStorage
        assert isinstance(storage, MemoryMediaFileStorage) and url, f"{key} serves no file"
        file = storage.get_file(url.rsplit("/", 1)[-1])
        return Download(data=file.content, mimetype=file.mimetype, file_name=file.filename)


@pytest.fixture
def downloads(monkeypatch: pytest.MonkeyPatch) -> Downloads:
    recorded = Downloads()

    class RecordingMediaFileManager(MediaFileManager):
        def __init__(self, *args: Any, **kwargs: Any) -> None:
            super().__init__(*args, **kwargs)
            recorded.managers.append(self)

    monkeypatch.setattr(app_test_module, "MediaFileManager", RecordingMediaFileManager)
    return recorded
