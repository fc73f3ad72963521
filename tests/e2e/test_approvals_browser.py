"""A failed batch approved in a real browser: Debian's chromium driven by Playwright against `loreguard up`.

A folder source whose folder is gone fails its batch at ingest; the batch waits on the Approvals page. The folder
comes back with a few documents, the operator approves a retry through the confirmation dialog, and the batch
completes. Screenshots of Approvals and Audit go to test-output/e2e/ with the other e2e screenshots.
"""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from playwright.sync_api import Page

from tests.support.browser import (
    LOCAL_ADMIN,
    ME,
    OUTPUT,
    Stack,
    cli,
    open_page,
    query,
    shoot,
    wait_for_status,
)
from tests.support.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

OPERATOR = LOCAL_ADMIN
DOCUMENTS = 5


def test_approve_a_failed_batch_and_see_it_complete(stack: Stack, page: Page, tmp_path: Path) -> None:
    p = page
    base = stack.url
    folder = tmp_path / "incoming"
    folder.mkdir()

    # Register the folder and refresh it from the command line (the Sources page has its own e2e test); the
    # folder is gone by the refresh, so ingest fails.
    loreguard = cli(stack)
    loreguard("source", "add", "flaky share", "--kind", "folder", "--location", str(folder))
    folder.rmdir()
    batch_id = int(json.loads(loreguard("refresh", "flaky share", "--json"))["batch_id"])
    wait_for_status(stack, batch_id, "awaiting_approval")

    # Approvals: the batch with why it failed; the folder is back, so a retry will work.
    write_corpus(folder, DOCUMENTS)
    open_page(p, base + "/approvals", "Approvals")
    p.get_by_text(f"Batch {batch_id} of source flaky share").wait_for()
    p.get_by_text("Error: InvalidSource").wait_for()
    p.get_by_role("button", name="Approve retry").wait_for()
    p.get_by_role("button", name="Reject…").wait_for()
    p.locator('[data-testid="stDataFrame"]').first.wait_for()
    shots = [shoot(p, "approvals")]
    p.get_by_role("button", name="Approve retry").click()
    dialog = p.get_by_role("dialog")
    dialog.get_by_text(f"Approve a retry of 1 batch(es) ({batch_id})?").wait_for()
    dialog.get_by_role("button", name="Approve retry").click()
    p.get_by_text(f"Batch {batch_id}: approved.").wait_for()  # the Update's answer, at once

    wait_for_status(stack, batch_id, "completed")
    assert query(
        stack.database, "SELECT stored, attempt, decision, decided_by FROM batches WHERE id = ?", batch_id
    ) == [(DOCUMENTS, 2, "approved", OPERATOR)]
    open_page(p, base + "/approvals", "Approvals")
    p.get_by_text("No failed batch is waiting for a decision.").wait_for()
    shots.append(shoot(p, "approvals-decided"))

    open_page(p, f"{base}/batches?batch={batch_id}", "Batches")
    p.get_by_text(f"{DOCUMENTS} of {DOCUMENTS} documents done · completed").wait_for()

    # Audit: every operator action, the approval recorded once, by the workflow.
    open_page(p, base + "/audit", "Audit")
    p.get_by_text("3 event(s), newest first").wait_for()
    shots.append(shoot(p, "audit"))
    assert query(stack.database, "SELECT actor, action, target FROM audit_events ORDER BY id") == [
        (ME, "add_source", "source:1"),  # on the command line
        (ME, "refresh", "source:1"),  # the batch it started is in the reason
        (OPERATOR, "approve", f"batch:{batch_id}"),  # on the Approvals page
    ]
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)}")
