"""The browser tests' fixtures: one Chromium per xdist worker with a fresh context (no cookies) per test, a real
OpenID provider on loopback, and the running stacks several test files use.

The browser tests of one file share an xdist group (browser-<file>), so they run one after another on one
worker with the file's stack; the files spread over the workers. Chromium is launched for the first browser
test of a run of them and closed after the last (Playwright's sync API keeps an event loop on the thread,
which the asyncio tests of the other folders must not meet).
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import AbstractContextManager

import pytest
from oidc_provider_mock import run_server_in_thread
from playwright.sync_api import Browser, Page, Playwright, sync_playwright

from tests.conftest import need
from tests.support.browser import (
    CHROMIUM,
    CHROMIUM_FLAGS,
    PAGE_TIMEOUT_MS,
    Provider,
    Stack,
    running_stack,
    signed_running_stack,
)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        if item.get_closest_marker("browser") is not None:
            item.add_marker(pytest.mark.xdist_group(f"browser-{item.path.stem}"))


class Chromium:
    """Debian's chromium, launched on first use and closed when no browser test follows."""

    def __init__(self) -> None:
        self._playwright: Playwright | None = None
        self._manager: AbstractContextManager[Playwright] | None = None
        self._browser: Browser | None = None

    def browser(self) -> Browser:
        if self._browser is None:
            need(CHROMIUM.exists(), f"Debian's chromium at {CHROMIUM}")
            self._manager = sync_playwright()
            self._playwright = self._manager.__enter__()
            self._browser = self._playwright.chromium.launch(
                executable_path=str(CHROMIUM), args=CHROMIUM_FLAGS, headless=True
            )
        return self._browser

    def close(self) -> None:
        if self._browser is not None and self._manager is not None:
            self._browser.close()
            self._manager.__exit__(None, None, None)
        self._browser = self._playwright = self._manager = None


CHROMIUM_SESSION = Chromium()


@pytest.hookimpl(hookwrapper=True)
def pytest_runtest_teardown(item: pytest.Item, nextitem: pytest.Item | None) -> Iterator[None]:
    yield  # the test's own contexts are closed first
    if nextitem is None or "browser" not in getattr(nextitem, "fixturenames", ()):
        CHROMIUM_SESSION.close()


@pytest.fixture
def browser() -> Browser:
    """The worker's Chromium (each test opens contexts of its own on it)."""
    return CHROMIUM_SESSION.browser()


@pytest.fixture
def page(browser: Browser) -> Iterator[Page]:
    """A page in a fresh context of the worker's Chromium, closed after the test."""
    context = browser.new_context(viewport={"width": 1400, "height": 1900})
    page = context.new_page()
    page.set_default_timeout(PAGE_TIMEOUT_MS)
    yield page
    context.close()


@pytest.fixture(scope="session")
def provider() -> Iterator[Provider]:
    """A real OpenID Connect provider (oidc-provider-mock) on loopback; each test names its own people."""
    with run_server_in_thread(port=0) as server:
        yield Provider(f"http://127.0.0.1:{server.server_port}")


@pytest.fixture(scope="module")
def stack(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`loreguard up` without sign-in (the loopback local admin), one per test file."""
    with running_stack(tmp_path_factory.mktemp("stack")) as running:
        yield running


@pytest.fixture(scope="module")
def signed_stack(provider: Provider, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Stack]:
    """`loreguard up` whose dashboard signs people in through the provider ([auth] in a secrets file), one per
    test file."""
    with signed_running_stack(provider, tmp_path_factory.mktemp("signed")) as stack:
        yield stack
