"""The dashboard in a real browser: Debian's chromium driven by Playwright against a running `loreguard up`.

Registers a folder source through the Sources form (after its dry run), refreshes it, watches the batch complete
on the live Overview and on Batches, searches the Library, and saves a screenshot of every page in
test-output/e2e/ (printed at the end).
"""

from __future__ import annotations

import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.browser import DOCUMENTS, LOCAL_ADMIN, OUTPUT, Stack, metric, open_page, query, shoot

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

OPERATOR = LOCAL_ADMIN


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
