"""Credentials in a source's URL (http://user:password@host/): refused at registration by the operations layer
(the CLI and the Sources page render its refusal), refused by the worker when one is stored anyway, before any
request; and a URL's user name and password never reach the log, whoever logs it (httpx logs each request)."""

from __future__ import annotations

import json
import logging
import subprocess
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.exceptions import ApplicationError

from cli.devserver import free_port
from core.settings import Settings
from data import repository
from data.db import make_engine, make_session_factory
from data.models import Source
from guard.fetching import Fetcher
from guard.netpolicy import AddressPolicy
from guard.types import SourceError
from operations import Actor, Context, Refused
from operations import sources as source_ops
from orchestration.gateway import TemporalGateway
from orchestration.types import IngestInput
from tests.support.cli import SCRIPT, cli_env
from tests.support.http_standins import LoopbackServer, RecordedRequest, Reply, StaticSite
from workers.steps import BatchSteps, build_steps

SECRET = "hunter2-s3cret"
FEED = """<?xml version="1.0"?><rss version="2.0"><channel><title>t</title>
<item><title>One</title><link>http://127.0.0.1/one</link><description>Text of one.</description></item>
</channel></rss>"""
# Every way of writing a user name or password before the host.
WITH_CREDENTIALS = [
    "http://user:{secret}@{host}/feed.xml",
    "https://{secret}@{host}/feed.xml",
    "http://:{secret}@{host}/feed.xml",
    "HTTP://User:{secret}@{host}:80/feed.xml?x=1",
    "http://user%40corp:{secret}@{host}/feed.xml",
    "  http://u:{secret}@{host}/feed.xml  ",
]


@pytest.fixture
def site() -> Iterator[StaticSite]:
    with StaticSite({"/feed.xml": (200, "application/rss+xml", FEED)}) as server:
        yield server


@pytest.fixture
def ctx(sqlite_sessions: sessionmaker[Session]) -> Iterator[Context]:
    gateway = TemporalGateway(f"127.0.0.1:{free_port()}", "default", connect_timeout=0.2)  # nobody there
    yield Context(Settings(allowed_hosts=["127.0.0.1"]), sqlite_sessions, gateway)
    gateway.close()


def sources(sessions: sessionmaker[Session]) -> int:
    with sessions() as session:
        return session.scalar(select(func.count()).select_from(Source)) or 0


@pytest.mark.parametrize("kind", ["feed", "web"])
@pytest.mark.parametrize("pattern", WITH_CREDENTIALS)
def test_registration_refuses_credentials_and_says_what_to_do(
    ctx: Context, site: StaticSite, kind: str, pattern: str
) -> None:
    url = pattern.format(secret=SECRET, host=site.url.removeprefix("http://"))

    with pytest.raises(Refused) as refused:
        source_ops.check_source(ctx, name="feed", kind=kind, location=url, interval=600)

    assert "a URL with credentials is not supported" in refused.value.message
    assert "LOREGUARD_ALLOWED_HOSTS" in refused.value.message  # what to do instead
    assert SECRET not in refused.value.message and "***@" in refused.value.message
    assert site.calls == 0


def test_a_draft_built_by_hand_is_refused_too(ctx: Context, site: StaticSite) -> None:
    draft = source_ops.SourceDraft(
        name="feed", kind="feed", location=f"http://u:{SECRET}@{site.url[7:]}/feed.xml", interval=600
    )
    admin = Actor("ada@example.org", frozenset({"admin"}))

    for action in (source_ops.register_source, source_ops.preview):
        with pytest.raises(Refused, match="a URL with credentials is not supported"):
            action(admin, ctx, draft)
    assert sources(ctx.sessions) == 0 and site.calls == 0


def test_the_command_line_renders_the_refusal_and_stores_nothing(tmp_path: Path, site: StaticSite) -> None:
    env = cli_env(tmp_path, f"127.0.0.1:{free_port()}")
    run = lambda *args: subprocess.run(  # noqa: E731
        [str(SCRIPT), *args], env=env, cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert run("migrate").returncode == 0
    url = f"http://ops:{SECRET}@{site.url[7:]}/feed.xml"

    result = run("source", "add", "feed", "--kind", "feed", "--location", url)

    assert result.returncode == 2, result.stderr
    assert "a URL with credentials is not supported" in result.stderr
    assert SECRET not in result.stderr + result.stdout
    assert "feed" not in run("source", "list").stdout
    assert site.calls == 0

    # One stored before the rule is listed without its secret.
    engine = make_engine(env["LOREGUARD_DATABASE_URL"])
    with make_session_factory(engine).begin() as session:
        repository.create_source(session, name="old", kind="feed", location=url)
    engine.dispose()
    table, as_json = run("source", "list").stdout, run("source", "list", "--json").stdout
    assert "http://***@127.0.0.1" in table and SECRET not in table
    assert json.loads(as_json)[0]["location"] == f"http://***@{site.url[7:]}/feed.xml"


@pytest.fixture
def steps(sqlite_url: str, tmp_path: Path) -> Iterator[BatchSteps]:
    built = build_steps(
        Settings(database_url=sqlite_url, allowed_hosts=["127.0.0.1"], folder_roots=[tmp_path])
    )
    yield built
    built.http.close()
    built.fetcher.close()


@pytest.mark.parametrize("kind", ["feed", "web"])
def test_the_worker_refuses_a_stored_url_with_credentials_before_any_request(
    steps: BatchSteps,
    sqlite_sessions: sessionmaker[Session],
    site: StaticSite,
    caplog: pytest.LogCaptureFixture,
    kind: str,
) -> None:
    with sqlite_sessions.begin() as session:  # stored before the rule, or written to the database by hand
        source = repository.create_source(
            session, name="old", kind=kind, location=f"http://ops:{SECRET}@{site.url[7:]}/feed.xml"
        )
        batch_id = repository.create_batch(session, source_id=source.id).id
    caplog.set_level(logging.DEBUG)

    with pytest.raises(ApplicationError) as failed:
        steps.ingest_source(IngestInput(batch_id=batch_id))

    assert failed.value.type == "InvalidSource" and failed.value.non_retryable
    assert "a URL with credentials is not supported" in failed.value.message
    assert SECRET not in failed.value.message
    assert site.calls == 0  # nothing was sent: neither the request nor the credentials
    assert SECRET not in caplog.text


def test_a_urls_user_and_password_never_reach_the_log(
    steps: BatchSteps, site: StaticSite, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.DEBUG)  # httpx logs each request line at INFO, httpcore more at DEBUG
    with httpx.Client() as client:  # any client in a worker process: an SDK's, a redirect's target
        assert client.get(f"http://ops:{SECRET}@{site.url[7:]}/feed.xml").status_code == 200

    lines = [r.getMessage() for r in caplog.records if r.name.startswith(("httpx", "httpcore"))]
    assert any("HTTP Request: GET http://***@127.0.0.1" in line for line in lines), lines
    assert SECRET not in caplog.text and "ops:" not in caplog.text


class RedirectsToCredentials(LoopbackServer):
    """Answers /feed.xml with a redirect to itself carrying a user name and password."""

    def respond(self, request: RecordedRequest) -> Reply:
        if request.path == "/feed.xml":
            target = self.url_for("/real.xml").replace("://", f"://user:{SECRET}@", 1)
            return Reply(302, b"", "text/plain", {"Location": target})
        return Reply(200, FEED.encode(), "application/rss+xml")


def test_a_redirect_to_a_url_with_credentials_is_refused_and_never_followed() -> None:
    with RedirectsToCredentials() as server, Fetcher(AddressPolicy.allowing(["127.0.0.1"])) as fetcher:
        with pytest.raises(SourceError) as refused:
            fetcher.get(server.url_for("/feed.xml"))
        assert refused.value.kind == "InvalidSource"
        assert "redirects to" in refused.value.message and "credentials" in refused.value.message
        assert SECRET not in refused.value.message
        assert [r.path for r in server.requests] == ["/feed.xml"]  # the target was never asked
