"""The dashboard's own start-up gate, however it is started: `streamlit run dashboard/app.py` directly (no
`loreguard dashboard` in front) on every interface, or in production with a weak cookie secret, refuses to serve
any page; on loopback without sign-in it is the labelled local admin. Real streamlit processes, real Chromium."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import httpx
import pytest
from playwright.sync_api import Browser

from cli.devserver import free_port
from tests.support.browser import PAGE_TIMEOUT_MS

pytestmark = [pytest.mark.browser, pytest.mark.slow]

APP = Path(__file__).resolve().parents[2] / "dashboard" / "app.py"
WEAK_AUTH = """[auth]
redirect_uri = "http://127.0.0.1:{port}/oauth2callback"
cookie_secret = "changethis"
client_id = "loreguard"
client_secret = "from-the-provider"
server_metadata_url = "http://127.0.0.1:9/.well-known/openid-configuration"
"""


def page_text(browser: Browser, tmp_path: Path, *args: str, **env: str) -> str:
    """Start `streamlit run dashboard/app.py *args` on a free port, open it in Chromium, return what it shows."""
    port = free_port()
    clean = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    clean.update(
        LOREGUARD_STATE_DIR=str(tmp_path / "state"),
        LOREGUARD_TEMPORAL_ADDRESS=f"127.0.0.1:{free_port()}",  # nobody there: the pages say so
        **env,
    )
    command = [sys.executable, "-m", "streamlit", "run", str(APP), "--server.port", str(port), *args]
    log = (tmp_path / f"streamlit-{port}.log").open("w")
    server = subprocess.Popen(command, env=clean, cwd=tmp_path, stdout=log, stderr=subprocess.STDOUT)
    try:
        deadline = time.monotonic() + 60
        while True:  # until Streamlit answers its health check on loopback (every address includes it)
            assert server.poll() is None, (tmp_path / f"streamlit-{port}.log").read_text()
            try:
                if httpx.get(f"http://127.0.0.1:{port}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            assert time.monotonic() < deadline, "streamlit did not start"
            time.sleep(0.1)
        context = browser.new_context()
        page = context.new_page()
        page.set_default_timeout(PAGE_TIMEOUT_MS)
        page.goto(f"http://127.0.0.1:{port}/")
        page.locator("[data-testid=stAlert], [data-testid=stSidebar]").first.wait_for()
        text = page.locator("body").inner_text()
        context.close()
        return text
    finally:
        server.terminate()
        server.wait(timeout=30)
        log.close()


@pytest.mark.parametrize(("address", "named"), [("", "every interface"), ("0.0.0.0", "0.0.0.0")])
def test_every_interface_without_sign_in_serves_no_page(
    browser: Browser, tmp_path: Path, address: str, named: str
) -> None:
    text = page_text(browser, tmp_path, "--server.address", address)

    assert "This dashboard refuses to serve pages" in text
    assert f"would listen on {named}" in text and "without sign-in" in text
    assert "local admin" not in text
    assert "Overview" not in text  # no page ran, no navigation was built


def test_production_with_a_weak_cookie_secret_serves_no_page(browser: Browser, tmp_path: Path) -> None:
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(WEAK_AUTH.format(port=free_port()))

    text = page_text(
        browser,
        tmp_path,
        "--server.address",
        "127.0.0.1",
        "--secrets.files",
        str(secrets),
        LOREGUARD_ENVIRONMENT="production",
    )

    assert "cookie_secret must be a random secret of at least 32 characters in production" in text
    assert "Sign in" not in text


def test_loopback_without_sign_in_is_the_local_admin(browser: Browser, tmp_path: Path) -> None:
    text = page_text(browser, tmp_path, "--server.address", "127.0.0.1")

    assert "(local admin)" in text and "refuses" not in text
