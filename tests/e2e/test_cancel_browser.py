"""The operator stops running batches in a real browser (Chromium, signed in through a real OpenID provider)
against a running `loreguard up`: one batch from its own page, then every running batch matching the list's
filter, the count shown first; each ends `cancelled` with what it stored kept. A clarification service that
answers slowly (a stand-in on loopback) keeps the batches running long enough. Screenshots go to
test-output/e2e/ (cancel-*.png)."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path

import pytest
from playwright.sync_api import Browser, Page

from tests.support.browser import (
    Provider,
    Stack,
    as_read,
    cli,
    open_page,
    query,
    shoot,
    signed_in,
    signed_running_stack,
    wait_for_status,
)
from tests.support.corpus import write_corpus
from tests.support.http_standins import ClarificationStandIn

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

OPERATOR = "olga.operator@example.org"
DOCUMENTS = 150  # at a quarter second each, a batch runs for well over a minute unless it is cancelled


@pytest.fixture(scope="module")
def slow_stack(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    with (
        ClarificationStandIn(delay=0.25) as clarifier,
        signed_running_stack(
            provider,
            tmp_path_factory.mktemp("cancel"),
            LOREGUARD_CLARIFICATION_URL=clarifier.endpoint,
            LOREGUARD_CHUNK_SIZE="4",
            LOREGUARD_CANCEL_CHECK_SECONDS="1",
            LOREGUARD_EVALUATOR="keywords",
        ) as stack,
    ):
        yield stack


def stored(stack: Stack, batch_id: int) -> int:
    rows = query(
        stack.database, "SELECT count(*) FROM artifacts WHERE batch_id = ? AND status = 'stored'", batch_id
    )
    return int(rows[0][0])  # type: ignore[call-overload]


def confirm(p: Page, question: str, reason: str, button: str) -> None:
    dialog = p.get_by_role("dialog")
    dialog.get_by_text(question).wait_for()
    dialog.get_by_label("Reason (required)").fill(reason)
    dialog.get_by_role("button", name=button).click()


def test_the_operator_cancels_one_batch_then_every_running_batch_matching_the_filter(
    provider: Provider,
    slow_stack: Stack,
    browser: Browser,
    tmp_path: Path,
) -> None:
    stack, base = slow_stack, slow_stack.url
    # `up` says sign-in is on, and that a first admin exists (LOREGUARD_ADMINS)
    assert "sign-in            on (OpenID Connect); 1 admin(s)" in stack.log.read_text()
    loreguard = cli(stack)
    for name in ("wrong share", "runaway one", "runaway two"):
        folder = tmp_path / name.replace(" ", "-")
        write_corpus(folder, DOCUMENTS)
        loreguard("source", "add", name, "--kind", "folder", "--location", str(folder))
    provider.person(OPERATOR, groups=["operator"])
    p = signed_in(browser, stack, OPERATOR)

    # One batch, from its own page.
    wrong = int(json.loads(loreguard("refresh", "wrong share", "--json"))["batch_id"])
    wait_for_status(stack, wrong, "running")
    open_page(p, f"{base}/batches?batch={wrong}", "Batches")
    p.get_by_role("button", name="Cancel batch…").click()
    confirm(p, f"Cancel 1 running batch(es) ({wrong})?", "registered the wrong share", "Cancel the batch")
    p.get_by_text(f"Batch {wrong}: cancellation requested").wait_for()
    wait_for_status(stack, wrong, "cancelled")
    ((status, kept, decided_by, reason, compensation),) = query(
        stack.database,
        "SELECT status, stored, decided_by, decision_reason, compensation FROM batches WHERE id = ?",
        wrong,
    )
    assert (status, decided_by, reason) == ("cancelled", OPERATOR, "registered the wrong share")
    assert kept == stored(stack, wrong) < DOCUMENTS
    assert f"{kept} stored document(s) kept" in str(compensation)
    open_page(p, f"{base}/batches?batch={wrong}", "Batches")
    p.get_by_text(as_read(f"Cancelled by {OPERATOR}", whole=False)).wait_for()
    p.get_by_text(f"{kept} stored document(s) kept", exact=False).first.wait_for()
    shots = [shoot(p, "cancel-one")]

    # Every running batch the filter matches: the count first, then one confirmation for all of them.
    runaways = [
        int(json.loads(loreguard("refresh", name, "--json"))["batch_id"])
        for name in ("runaway one", "runaway two")
    ]
    for batch_id in runaways:
        wait_for_status(stack, batch_id, "running")
    open_page(p, f"{base}/batches?status=running", "Batches")
    p.get_by_text("2 running batch(es) match this filter.").wait_for()
    shots.append(shoot(p, "cancel-matching"))
    p.get_by_role("button", name="Cancel all 2 matching…").click()
    confirm(
        p,
        f"Cancel 2 running batch(es): every running batch matching the filter ({runaways[0]}, {runaways[1]})?",
        "runaway refresh spending model quota",
        "Cancel 2 batches",
    )
    for batch_id in runaways:
        p.get_by_text(f"Batch {batch_id}: cancellation requested").wait_for()
    for batch_id in runaways:
        wait_for_status(stack, batch_id, "cancelled")

    # Cancelled is a status of its own on the list, in the command line and in the audit log.
    open_page(p, f"{base}/batches?status=cancelled", "Batches")
    p.get_by_text("3 batch(es), newest first").wait_for()
    shots.append(shoot(p, "cancel-list"))
    listed = json.loads(loreguard("batches", "--status", "cancelled", "--json"))
    assert sorted(b["id"] for b in listed) == sorted([wrong, *runaways])
    assert all(b["decided_by"] == OPERATOR for b in listed)
    assert query(
        stack.database, "SELECT actor, target, reason FROM audit_events WHERE action = 'cancel'"
    ) == [
        (OPERATOR, f"batch:{wrong}", "registered the wrong share"),
        *((OPERATOR, f"batch:{b}", "runaway refresh spending model quota") for b in runaways),
    ]
    print(f"\nscreenshots: {', '.join(s.name for s in shots)}")
