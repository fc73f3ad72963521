"""Sign-in and roles in a real browser: a real OpenID Connect provider (oidc-provider-mock) on loopback, a running
`loreguard up` whose dashboard signs people in through it, and Chromium signing in as each kind of person.

An analyst sees a failed batch but no approve button, and a forged call to the operation in their name is
refused and audited; an operator approves the real failed batch; an admin grants a role on the Users page; the
audit page names each person by email, and the decision in Temporal carries the operator's email.
"""

from __future__ import annotations

import asyncio
import json
import re
import secrets
import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
from oidc_provider_mock import run_server_in_thread
from playwright.sync_api import Browser, Page, sync_playwright
from temporalio.client import Client

from cli.devserver import free_port
from core.settings import Settings
from data.db import make_engine, make_session_factory
from operations import Context, Forbidden
from operations import batches as batch_ops
from operations.people import identify
from orchestration.gateway import TemporalGateway
from tests.conftest import need
from tests.e2e.test_approvals_browser import cli, wait_for_status
from tests.e2e.test_dashboard_browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    OUTPUT,
    Stack,
    open_page,
    query,
    running_stack,
    shoot,
)
from tests.support.corpus import write_corpus

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

OPERATOR = "olga.operator@example.org"
ANALYST = "ana.analyst@example.org"
ADMIN = "ada.admin@example.org"  # an admin through LOREGUARD_ADMINS, not through a claim
NEWCOMER = "ned.newcomer@example.org"
DOCUMENTS = 4


@dataclass
class Provider:
    url: str

    def person(self, sub: str, **claims: object) -> None:
        """What the provider says about the person `sub` at their next sign-in (PUT /users/{sub}): by default
        an e-mail equal to `sub` that the provider has verified."""
        claims = {"email": sub, "email_verified": True, **claims}
        answer = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        assert answer.status_code == 204, answer.text


@pytest.fixture(scope="module")
def provider() -> Iterator[Provider]:
    with run_server_in_thread(port=0) as server:
        yield Provider(f"http://127.0.0.1:{server.server_port}")


@pytest.fixture(scope="module")
def signed_stack(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`loreguard up` whose dashboard signs people in through the provider ([auth] in a secrets file)."""
    with signed_running_stack(provider, tmp_path_factory.mktemp("signed")) as stack:
        yield stack


@contextmanager
def signed_running_stack(provider: Provider, folder: Path, **extra_env: str) -> Iterator[Stack]:
    """`loreguard up` in `folder` signing people in through the provider, with `extra_env` for the stack."""
    port = free_port()
    secrets_file = folder / "secrets.toml"  # one host spelling everywhere (127.0.0.1), as the browser uses
    secrets_file.write_text(
        "[auth]\n"
        f'redirect_uri = "http://127.0.0.1:{port}/oauth2callback"\n'
        f'cookie_secret = "{secrets.token_hex(32)}"\n'
        'client_id = "loreguard-dashboard"\n'
        'client_secret = "the-mock-provider-accepts-any-client"\n'
        f'server_metadata_url = "{provider.url}/.well-known/openid-configuration"\n'
    )
    with running_stack(
        folder,
        port,
        LOREGUARD_DASHBOARD_SECRETS=str(secrets_file),
        LOREGUARD_ADMINS=json.dumps([ADMIN]),
        **extra_env,
    ) as stack:
        yield stack


@pytest.fixture(scope="module")
def browser() -> Iterator[Browser]:
    need(CHROMIUM.exists(), f"Debian's chromium at {CHROMIUM}")
    with sync_playwright() as playwright:
        chromium = playwright.chromium.launch(
            executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
        )
        yield chromium
        chromium.close()


def temporal_address(stack: Stack) -> str:
    found = re.search(r"Temporal frontend\s+(\S+)", stack.log.read_text(errors="replace"))
    assert found is not None, "the stack did not print its Temporal frontend"
    return found.group(1)


def update_actors(address: str, workflow_id: str) -> list[str]:
    """The `actor` of every accepted Update (approve_retry, reject) in the workflow's history."""

    async def read() -> list[str]:
        client = await Client.connect(address)
        actors = []
        async for event in client.get_workflow_handle(workflow_id).fetch_history_events():
            if event.HasField("workflow_execution_update_accepted_event_attributes"):
                request = event.workflow_execution_update_accepted_event_attributes.accepted_request
                for payload in request.input.args.payloads:
                    actors.append(json.loads(payload.data)["actor"])
        return actors

    with ThreadPoolExecutor(1) as thread:  # Playwright's sync API already runs a loop on this thread
        return thread.submit(asyncio.run, read()).result(timeout=60)


def as_read(text: str, *, whole: bool = True) -> re.Pattern[str]:
    """`text` as a person reads it on a page: literal text carries an invisible word joiner after "@" (so it
    never becomes a mail link, dashboard/text.py), which a match by the visible characters must allow."""
    pattern = "\u2060?".join(map(re.escape, text))
    return re.compile(f"^{pattern}$" if whole else pattern)


def signed_in(browser: Browser, stack: Stack, sub: str, shown: str | None = None) -> Page:
    """A fresh browser session (no cookies) signed in as `sub` through the provider's authorize form, named
    `shown` in the sidebar (default: `sub`, a verified e-mail)."""
    context = browser.new_context(viewport={"width": 1400, "height": 1600})
    # The provider's pages fetch a stylesheet from a CDN; there is no internet here, and none is needed.
    context.route(lambda url: not url.startswith("http://127.0.0.1"), lambda route: route.abort())
    page = context.new_page()
    page.set_default_timeout(30_000)
    page.goto(stack.url + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/oauth2/authorize"))
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(re.compile(re.escape(stack.url) + r"/?$"))
    page.get_by_text(as_read(f"Signed in as {shown or sub}")).wait_for()
    return page


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
