"""A hostile feed title in a real browser: the document page shows it as typed and the reader's browser calls
nobody (a Markdown image in a title would be a read receipt to the feed's author, with the reader's address)."""

from __future__ import annotations

import os
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Page
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker

from cli.devserver import free_port
from dashboard.text import WORD_JOINER
from data.models import Artifact, Source
from tests.conftest import need
from tests.dashboard.seed import HOSTILE, seed_library
from tests.support.browser import LOREGUARD
from tests.support.http_standins import StaticSite

pytestmark = [pytest.mark.browser, pytest.mark.slow]


@pytest.fixture
def attacker() -> Iterator[StaticSite]:
    """The feed author's server: any request it records is a reader's browser fetching what a title named."""
    pixel = (200, "image/png", b"\x89PNG\r\n\x1a\n")
    with StaticSite({"/pixel.png": pixel, "/tag.png": pixel, "/source.png": pixel}) as site:
        yield site


@pytest.fixture
def dashboard(tmp_path: Path, sqlite_url: str, sqlite_sessions: sessionmaker[Session]) -> Iterator[str]:
    """`loreguard dashboard` alone (no Temporal needed to read the library), local admin on loopback."""
    need(LOREGUARD.exists(), f"the loreguard console script ({LOREGUARD})")
    port = free_port()
    secrets = tmp_path / "secrets.toml"
    secrets.write_text("")  # no [auth]: the loopback-only local-admin mode
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_DATABASE_URL=sqlite_url,
        LOREGUARD_STATE_DIR=str(tmp_path / "state"),
        LOREGUARD_DASHBOARD_PORT=str(port),
        LOREGUARD_DASHBOARD_SECRETS=str(secrets),
        LOREGUARD_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nobody listens
    )
    log = tmp_path / "dashboard.out"
    with log.open("wb") as out:
        proc = subprocess.Popen([str(LOREGUARD), "dashboard"], env=env, stdout=out, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        deadline = time.monotonic() + 60
        while not healthy(url):
            assert proc.poll() is None, log.read_text(errors="replace")
            assert time.monotonic() < deadline, log.read_text(errors="replace")
            time.sleep(0.2)
        yield url
    finally:
        proc.terminate()
        try:
            proc.wait(30)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def healthy(url: str) -> bool:
    try:
        return httpx.get(f"{url}/_stcore/health", timeout=1.0, trust_env=False).status_code == 200
    except httpx.HTTPError:
        return False


def read(shown: str) -> str:
    """The text as a person reads it: the word joiners that stop autolinks are invisible."""
    return shown.replace(WORD_JOINER, "").strip()


def test_a_hostile_title_shows_as_typed_and_calls_nobody(
    attacker: StaticSite, dashboard: str, sqlite_sessions: sessionmaker[Session], page: Page
) -> None:
    seeded = seed_library(sqlite_sessions)
    title = (
        f"![x]({attacker.url}/pixel.png) <img src={attacker.url}/tag.png> [link]({attacker.url}/) "
        ":red[red] $x^2$ **bold**"
    )
    source_name = f"![s]({attacker.url}/source.png) feed"
    with sqlite_sessions.begin() as session:
        session.execute(update(Source).where(Source.id == seeded.sources[HOSTILE]).values(name=source_name))
        doc_id = session.scalars(
            select(Artifact.id).where(Artifact.batch_id == seeded.batches["b4"], Artifact.title.is_not(None))
        ).first()
        session.execute(update(Artifact).where(Artifact.id == doc_id).values(title=title))

    asked: list[str] = []
    page.on("request", lambda request: asked.append(request.url))
    page.goto(f"{dashboard}/document?doc={doc_id}")
    heading = page.get_by_role("heading", level=3)  # the document's title, under the page's own
    heading.wait_for()
    link = page.locator('[data-testid="stPageLink"]').filter(has_text=f"Batch {seeded.batches['b4']} of")
    link.wait_for()
    page.wait_for_load_state("networkidle")
    shown_title = read(heading.inner_text())
    shown_link = read(link.inner_text())
    hostile_markup = page.locator(f'[src^="{attacker.url}"], [href^="{attacker.url}"]').count()

    assert [u for u in asked if u.startswith(attacker.url)] == []  # the browser asked the author for nothing
    assert attacker.requests == []  # and the author heard nothing
    assert hostile_markup == 0  # no picture and no link made of a title or a name
    assert shown_title == title  # every character as typed
    assert shown_link == f"Batch {seeded.batches['b4']} of {source_name}"
