"""Each person's path in a real browser (Chromium, signed in through a real OpenID provider) against a running
`loreguard up`: the analyst searches the library and opens a document; the operator watches a new failed batch
appear on Approvals without reloading and approves it from the batch's own page. Screenshots of every page go
to test-output/e2e/ (people-*.png)."""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page, expect

from tests.support.browser import (
    OUTPUT,
    Provider,
    Stack,
    as_read,
    cli,
    open_page,
    query,
    shoot,
    signed_in,
    wait_for_status,
)
from tests.support.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

ANALYST = "ana.analyst@example.org"
OPERATOR = "olga.operator@example.org"
DOCUMENTS = 6


def test_the_analyst_opens_a_document_from_a_search(
    provider: Provider,
    signed_stack: Stack,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack = signed_stack
    provider.person(ANALYST, name="Ana", groups=["analyst"])
    notes = tmp_path / "notes"
    write_corpus(notes, DOCUMENTS)
    loreguard = cli(stack)
    loreguard("source", "add", "field notes", "--kind", "folder", "--location", str(notes))
    loreguard("refresh", "field notes", "--wait")
    title, _, _ = query(
        stack.database,
        "SELECT title, id, text FROM artifacts WHERE status = 'stored' AND title IS NOT NULL ORDER BY id LIMIT 1",
    )[0]
    word = next(w for w in re.findall(r"[A-Za-z]{5,}", str(title)))

    p = signed_in(browser, stack, ANALYST)
    open_page(p, stack.url + "/library", "Library")
    search = p.get_by_label("Search titles and text", exact=True)
    search.fill(word)
    search.press("Enter")
    p.get_by_text(re.compile(r"\d+ document\(s\) match, best match first")).wait_for()
    shots = [shoot(p, "people-analyst-library-search")]
    # pick a matching document in "Open a document" (the search ranks several) and follow the link
    p.get_by_label("Open a document").click()
    p.get_by_role("option").first.click()
    p.get_by_role("link", name="Open document", exact=True).click()
    p.get_by_role("heading", name="Document", exact=True).wait_for()
    # a client-side page switch (history.pushState, no navigation event): poll the address instead
    expect(p).to_have_url(re.compile(r"/document\?doc=\d+"), timeout=30_000)
    opened = int(re.search(r"doc=(\d+)", p.url).group(1))  # type: ignore[union-attr]
    title, text = query(stack.database, "SELECT title, text FROM artifacts WHERE id = ?", opened)[0]
    assert word.lower() in f"{title} {text}".lower()  # it is one the search found
    p.get_by_role("heading", name=str(title)).wait_for()
    body = p.locator('[data-testid="stTextArea"] textarea')
    body.wait_for()
    assert body.input_value() == text  # an analyst may see the text
    p.get_by_text("Seen 1 time(s)").wait_for()
    p.get_by_text("Rationale").wait_for()
    p.get_by_role("link", name=re.compile(r"^Batch \d+ of field notes$")).wait_for()
    shots.append(shoot(p, "people-analyst-document"))
    p.context.close()
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)}")


def test_the_operator_sees_a_new_failed_batch_without_reloading_and_approves_it_on_its_page(
    provider: Provider,
    signed_stack: Stack,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack = signed_stack
    provider.person(OPERATOR, name="Olga", groups=["operator"])
    p: Page = signed_in(browser, stack, OPERATOR)
    open_page(p, stack.url + "/approvals", "Approvals")
    p.get_by_text("No failed batch is waiting for a decision.").wait_for()

    # A batch fails while the page is open: its folder is gone when the refresh runs.
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    loreguard = cli(stack)
    loreguard("source", "add", "vanishing share", "--kind", "folder", "--location", str(incoming))
    incoming.rmdir()
    batch_id = int(json.loads(loreguard("refresh", "vanishing share", "--json"))["batch_id"])
    wait_for_status(stack, batch_id, "awaiting_approval")
    write_corpus(incoming, 3)  # back, so the approved retry works

    started = time.monotonic()
    p.get_by_text(f"Batch {batch_id} of source vanishing share").wait_for(timeout=20_000)  # no reload
    p.get_by_role("link", name="1 batch(es) awaiting approval").wait_for(timeout=20_000)  # the sidebar too
    assert time.monotonic() - started < 20
    shots = [shoot(p, "people-operator-approvals-live")]

    # The batch's own page: approve there.
    p.get_by_role("link", name=f"Open batch {batch_id}").click()
    p.get_by_role("heading", name=f"Batch {batch_id}").wait_for()
    p.get_by_text("Waiting for an operator's decision").wait_for()
    shots.append(shoot(p, "people-operator-batch-awaiting"))
    p.get_by_role("button", name="Approve retry").click()
    dialog = p.get_by_role("dialog")
    dialog.get_by_text(as_read(f"Decided as {OPERATOR}", whole=False)).wait_for()
    dialog.get_by_role("button", name="Approve retry").click()
    p.get_by_text(f"Batch {batch_id}: approved.").wait_for()
    wait_for_status(stack, batch_id, "completed")
    assert query(
        stack.database, "SELECT decision, actor, attempt FROM batch_decisions WHERE batch_id = ?", batch_id
    ) == [("approved", OPERATOR, 1)]
    p.reload()
    p.get_by_text("3 of 3 documents done · completed").wait_for()
    p.get_by_text("Decisions").wait_for()
    shots.append(shoot(p, "people-operator-batch-decided"))

    # Every other page, as the operator sees it.
    for path, title in (
        ("/", "Overview"),
        ("/sources", "Sources"),
        ("/batches", "Batches"),
        ("/workers", "Workers"),
        ("/sla", "SLA"),
        ("/audit", "Audit"),
        ("/users", "Users"),
    ):
        open_page(p, stack.url + path, title)
        shots.append(shoot(p, f"people-operator-{title.lower()}"))
    p.context.close()
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)}")
