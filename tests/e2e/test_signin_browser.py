"""Sign-in and roles in a real browser: a real OpenID Connect provider (oidc-provider-mock) on loopback, a running
`loreguard up` whose dashboard signs people in through it, and Chromium signing in as each kind of person.

An analyst sees a failed batch but no approve button, and a forged call to the operation in their name is
refused and audited; an operator approves the real failed batch; an admin grants a role on the Users page; the
audit page names each person by email, and the decision in Temporal carries the operator's email.
"""

from __future__ import annotations

import json
import re
import time
from pathlib import Path

import pytest
from playwright.sync_api import Browser

from core.settings import Settings
from data.db import make_engine, make_session_factory
from operations import Context, Forbidden
from operations import batches as batch_ops
from operations.people import identify
from orchestration.gateway import TemporalGateway
from tests.support.browser import (
    ADMIN,
    OUTPUT,
    Provider,
    Stack,
    as_read,
    cli,
    open_page,
    query,
    shoot,
    signed_in,
    temporal_address,
    update_actors,
    wait_for_status,
)
from tests.support.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

OPERATOR = "olga.operator@example.org"
ANALYST = "ana.analyst@example.org"
NEWCOMER = "ned.newcomer@example.org"
DOCUMENTS = 4


def test_each_person_does_only_what_their_role_allows(
    provider: Provider, signed_stack: Stack, browser: Browser, tmp_path: Path
) -> None:
    stack = signed_stack
    provider.person(OPERATOR, name="Olga", groups=["operator"])
    provider.person(ANALYST, name="Ana", groups=["analyst"])
    provider.person(ADMIN, name="Ada", groups=[])
    shots: list[Path] = []

    # A real failed batch: its folder is gone when the refresh runs (the command line acts as the OS user).
    incoming = tmp_path / "incoming"
    incoming.mkdir()
    loreguard = cli(stack)
    loreguard("source", "add", "flaky share", "--kind", "folder", "--location", str(incoming))
    incoming.rmdir()
    batch_id = int(json.loads(loreguard("refresh", "flaky share", "--json"))["batch_id"])
    wait_for_status(stack, batch_id, "awaiting_approval")
    write_corpus(incoming, DOCUMENTS)  # back, so the approved retry works

    # The analyst sees the batch but may not decide: no button, and the page says which role it needs.
    analyst = signed_in(browser, stack, ANALYST)
    analyst.get_by_text("Roles: analyst").wait_for()
    open_page(analyst, stack.url + "/approvals", "Approvals")
    analyst.get_by_text(f"Batch {batch_id} of source flaky share").wait_for()
    analyst.get_by_text("You need the operator or admin role to approve or reject batches").first.wait_for()
    assert analyst.get_by_role("button", name="Approve retry").count() == 0
    shots.append(shoot(analyst, "signin-analyst-approvals"))
    open_page(analyst, stack.url + "/audit", "Audit")
    analyst.get_by_text("You need the manager or admin role to read the audit log").wait_for()
    analyst.context.close()

    # A forged call in the analyst's name (what a tampered page could send) is refused server-side, and audited.
    settings = Settings(database_url=f"sqlite:///{stack.database}", temporal_address=temporal_address(stack))
    engine = make_engine(settings.target_database_url)
    gateway = TemporalGateway(settings.target_temporal_address, settings.temporal_namespace)
    try:
        ctx = Context(settings, make_session_factory(engine), gateway)
        forger = identify(
            ctx,
            {
                "iss": provider.url,
                "sub": ANALYST,
                "email": ANALYST,
                "email_verified": True,
                "groups": ["analyst"],
            },
        )
        with pytest.raises(Forbidden, match="operator or admin role"):
            batch_ops.approve_retry(forger, ctx, batch_id)
    finally:
        gateway.close()
        engine.dispose()
    assert query(stack.database, "SELECT status FROM batches WHERE id = ?", batch_id) == [
        ("awaiting_approval",)
    ]

    # The operator approves the retry; the batch completes.
    operator = signed_in(browser, stack, OPERATOR)
    open_page(operator, stack.url + "/approvals", "Approvals")
    operator.get_by_text(f"Batch {batch_id} of source flaky share").wait_for()
    shots.append(shoot(operator, "signin-operator-approvals"))
    operator.get_by_role("button", name="Approve retry").click()
    dialog = operator.get_by_role("dialog")
    dialog.get_by_text(as_read(f"Decided as {OPERATOR}", whole=False)).wait_for()
    dialog.get_by_role("button", name="Approve retry").click()
    operator.get_by_text(f"Batch {batch_id}: approved.").wait_for()
    wait_for_status(stack, batch_id, "completed")
    assert query(stack.database, "SELECT decided_by, stored FROM batches WHERE id = ?", batch_id) == [
        (OPERATOR, DOCUMENTS)
    ]
    open_page(operator, stack.url + "/users", "Users")
    operator.get_by_text("You need the admin role to assign roles").wait_for()
    operator.context.close()

    # The admin (named by LOREGUARD_ADMINS) grants a role on the Users page.
    admin = signed_in(browser, stack, ADMIN)
    admin.get_by_text("Roles: admin").wait_for()
    open_page(admin, stack.url + "/users", "Users")
    admin.get_by_label("Person (verified e-mail, or issuer|subject)").fill(NEWCOMER)
    admin.get_by_role("button", name="Grant").click()
    admin.get_by_text(as_read(f"{NEWCOMER} now holds the viewer role.", whole=False)).wait_for()
    shots.append(shoot(admin, "signin-admin-users"))

    # Nobody becomes the admin by claiming the admin's address: not as an unverified e-mail, not as a subject.
    # Each is named by the provider's issuer and subject, with no role (the grant to NEWCOMER's e-mail, too,
    # goes only to a verified NEWCOMER).
    for sub, claims in [
        ("mallory", {"email": ADMIN, "email_verified": False}),
        (ADMIN.upper(), {"email": None, "email_verified": None}),
        (f"x-{NEWCOMER}", {"email": NEWCOMER, "email_verified": False}),
    ]:
        provider.person(sub, **claims)
        impostor = signed_in(browser, stack, sub, shown=f"{provider.url}|{sub}")
        impostor.get_by_text("Roles: no role").wait_for()
        open_page(impostor, stack.url + "/users", "Users")
        impostor.get_by_text("You need the admin role to assign roles").wait_for()
        impostor.context.close()

    # The audit log names every person by email, the refusal included.
    open_page(admin, stack.url + "/audit", "Audit")
    admin.get_by_text(re.compile(r"\d+ event\(s\), newest first")).wait_for()
    admin.get_by_role("combobox").first.click()  # the actor filter lists each person by email
    for person in (OPERATOR, ANALYST, ADMIN):
        admin.get_by_role("option", name=person).wait_for()
    admin.keyboard.press("Escape")
    shots.append(shoot(admin, "signin-admin-audit"))
    admin.context.close()
    events = query(stack.database, "SELECT actor, action, target FROM audit_events ORDER BY id")
    assert (ANALYST, "refused:approve", f"batch:{batch_id}") in events
    assert (OPERATOR, "approve", f"batch:{batch_id}") in events
    assert (ADMIN, "grant_role", f"person:{NEWCOMER}") in events
    assert query(stack.database, "SELECT subject, role, granted_by FROM role_assignments") == [
        (NEWCOMER, "viewer", ADMIN)
    ]

    # The decision in Temporal's history carries the same identity (the approve_retry Update's input).
    (workflow_id,) = query(stack.database, "SELECT workflow_id FROM batches WHERE id = ?", batch_id)[0]
    assert OPERATOR in update_actors(temporal_address(stack), str(workflow_id))
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)} ({time.strftime('%H:%M:%S')})")
