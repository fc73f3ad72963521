"""Sources: the register form (refusals, dry run, saving), the table, and every action with its audit event."""

from __future__ import annotations

import asyncio
from datetime import timedelta
from pathlib import Path

import pytest
from sqlalchemy import func, select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest
from temporalio.client import Client

from cli.devserver import DevServer, free_port
from core.vocabulary import BatchStatus
from data import repository
from data.models import AuditEvent, Batch, Source, utcnow
from orchestration.client import register_search_attributes
from tests.dashboard.conftest import OPERATOR, OpenPage, unescaped
from tests.dashboard.seed import HOSTILE, Seeded
from tests.support.http_standins import StaticSite


def audit(sessions: sessionmaker[Session]) -> list[tuple[str, str, str, str | None]]:
    with sessions() as session:
        return [
            (e.actor, e.action, e.target, e.reason)
            for e in session.scalars(select(AuditEvent).order_by(AuditEvent.id))
        ]


def source_names(sessions: sessionmaker[Session]) -> list[str]:
    with sessions() as session:
        return list(session.scalars(select(Source.name).order_by(Source.name)))


def fill(
    at: AppTest, *, name: str, kind: str = "folder", location: str = "", interval: int = 3600
) -> AppTest:
    at.text_input(key="new_name").input(name)
    at.selectbox(key="new_kind").select(kind)
    at.text_input(key="new_location").input(location)
    at.number_input(key="new_interval").set_value(interval)
    return at


def submit(at: AppTest, label: str) -> AppTest:
    next(b for b in at.button if b.label == label).click()
    return at.run()


def errors(at: AppTest) -> list[str]:
    return [unescaped(e.value) for e in at.error]


@pytest.fixture
def folder(tmp_path: Path) -> Path:
    docs = tmp_path / "docs"
    docs.mkdir()
    (docs / "a-policy.md").write_text("# Access policy\n\nWho may read what, and why it matters.\n")
    (docs / "b-notes.txt").write_text("Quarterly review notes\n\nEverything was reviewed twice.\n")
    (docs / "c-broken.pdf").write_bytes(b"%PDF-1.4 truncated")
    return docs


@pytest.mark.parametrize(
    ("name", "kind", "location", "interval", "message"),
    [
        ("", "folder", "FOLDER", 3600, "Name: a source needs a name."),
        ("alpha", "folder", "FOLDER", 3600, "Name: a source named 'alpha' already exists."),
        ("new", "folder", "FOLDER/missing", 3600, "Location: folder <folder>/missing does not exist."),
        (
            "new",
            "folder",
            "/etc",
            3600,
            "Location: folder /etc is outside the folders sources may read (<root>); "
            "an operator can add a root to LOREGUARD_FOLDER_ROOTS.",
        ),
        (
            "new",
            "feed",
            "ftp://example.org/feed",
            3600,
            "Location: ftp://example.org/feed is not an http(s) URL.",
        ),
        ("new", "web", "   ", 3600, "Location: location must not be empty."),
        ("new", "folder", "FOLDER", 30, "Refresh interval: at least 60 seconds (got 30)."),
        (
            "new\x1b[2Jname",
            "folder",
            "FOLDER",
            3600,
            "Name: no control characters such as tabs, line breaks or escapes (found '\\x1b').",
        ),
        (
            "42",
            "folder",
            "FOLDER",
            3600,
            "Name: not only digits: commands take a source's id or its name, so add a letter.",
        ),
    ],
)
def test_register_refuses_bad_input_and_saves_nothing(
    seeded: Seeded,
    dashboard_env: sessionmaker[Session],
    open_page: OpenPage,
    folder: Path,
    name: str,
    kind: str,
    location: str,
    interval: int,
    message: str,
) -> None:
    before = source_names(dashboard_env)
    at = open_page("sources")
    fill(at, name=name, kind=kind, location=location.replace("FOLDER", str(folder)), interval=interval)
    submit(at, "Register")

    assert message.replace("<folder>", str(folder)).replace("<root>", str(folder.parent.resolve())) in errors(
        at
    )
    assert source_names(dashboard_env) == before
    assert audit(dashboard_env) == []


def test_dry_run_previews_the_first_documents_and_saves_nothing(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, folder: Path
) -> None:
    at = open_page("sources")
    fill(at, name="docs", location=str(folder))
    submit(at, "Preview (dry run)")

    assert not at.error, errors(at)
    preview = next(d for d in at.dataframe if "problem" in d.value.columns).value
    assert list(preview["title"][:2]) == ["Access policy", "Quarterly review notes"]
    assert list(preview["uri"]) == [
        (folder / n).as_uri() for n in ("a-policy.md", "b-notes.txt", "c-broken.pdf")
    ]
    assert list(preview["bytes"]) == [
        (folder / n).stat().st_size for n in ("a-policy.md", "b-notes.txt", "c-broken.pdf")
    ]
    assert preview["problem"][2].startswith("normalize:")  # the broken PDF would fail alone
    assert source_names(dashboard_env) == []
    assert audit(dashboard_env) == []


def test_register_saves_the_source_with_an_audit_event(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, folder: Path
) -> None:
    at = open_page("sources")
    fill(at, name="  docs  ", location=str(folder), interval=600)
    submit(at, "Register")

    assert not at.error, errors(at)
    assert any("Source 'docs' registered" in unescaped(s.value) for s in at.success)
    assert any('selected under "Act on a source"' in unescaped(s.value) for s in at.success)
    assert at.text_input(key="new_name").value == ""  # an empty form for the next one
    assert at.text_input(key="new_location").value == ""
    assert at.selectbox(key="source_chosen").format_func(at.selectbox(key="source_chosen").value) == "docs"
    table = at.dataframe[0].value
    assert list(table["name"]) == ["docs"]
    assert list(table["refreshes"]) == ["every 10 min"]
    assert list(table["location"]) == [str(folder.resolve())]
    with dashboard_env() as session:
        source = session.scalars(select(Source)).one()
    assert audit(dashboard_env) == [
        (OPERATOR, "add_source", f"source:{source.id}", f"folder {folder.resolve()}, every 600 s")
    ]


def test_table_shows_each_sources_refreshes(seeded: Seeded, open_page: OpenPage) -> None:
    table = open_page("sources").dataframe[0].value.set_index("name")

    assert list(table.index) == sorted(seeded.sources)
    # the batch counts open the source's batches, the filter in the address
    assert table.loc["alpha", "batches"] == "batches?source=alpha&n=2"
    assert table.loc["alpha", "failed batches"] == "batches?source=alpha&status=failed&n=0"
    assert table.loc["alpha", "documents"] == 5  # 3 + 2 stored
    assert table.loc["alpha", "failed documents"] == 1
    assert table.loc["alpha", "last status"] == "completed"
    assert table.loc["beta", "last status"] == "running"
    assert table.loc[HOSTILE, "last status"] == "awaiting approval"  # the hostile name is a plain cell


def choose(at: AppTest, name: str) -> AppTest:
    at.selectbox(key="source_chosen").select(
        next(o for o in at.selectbox(key="source_chosen").options if o == name)
    )
    return at.run()


def test_pause_resume_and_interval_are_saved_and_audited(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    choose(at, "beta")
    beta = seeded.sources["beta"]

    at.button(key="pause").click().run()
    assert at.dataframe[0].value.set_index("name").loc["beta", "paused"]
    assert at.button(key="pause").label == "Resume"
    at.button(key="pause").click().run()
    assert not at.dataframe[0].value.set_index("name").loc["beta", "paused"]

    at.number_input(key=f"interval_{beta}").set_value(59)
    at.button(key="save_interval").click().run()
    assert "The refresh interval must be at least 60 seconds (got 59)." in errors(at)
    at.number_input(key=f"interval_{beta}").set_value(900)
    at.button(key="save_interval").click().run()
    assert at.dataframe[0].value.set_index("name").loc["beta", "refreshes"] == "every 15 min"

    assert audit(dashboard_env) == [
        (OPERATOR, "pause_source", f"source:{beta}", None),
        (OPERATOR, "resume_source", f"source:{beta}", None),
        (OPERATOR, "set_interval", f"source:{beta}", "3600 s -> 900 s"),
    ]


def test_delete_asks_for_confirmation(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    choose(at, "alpha")

    at.button(key="delete").click().run()
    assert "Delete alpha with its 2 batch(es)" in " ".join(unescaped(m.value) for m in at.markdown).replace(
        "*", ""
    )
    at.button(key="delete_cancelled").click().run()
    assert "alpha" in source_names(dashboard_env)
    assert not _has(at, "delete_confirmed")  # the dialog closed

    at.button(key="delete").click().run()
    at.button(key="delete_confirmed").click().run()
    assert "alpha" not in source_names(dashboard_env)
    assert any("Source 'alpha' deleted." in unescaped(s.value) for s in at.success)
    assert "alpha" not in list(at.dataframe[0].value["name"])
    assert audit(dashboard_env) == [
        (OPERATOR, "delete_source", f"source:{seeded.sources['alpha']}", "deleted 'alpha'")
    ]


def _has(at: AppTest, key: str) -> bool:
    return any(b.key == key for b in at.button)


def test_delete_is_refused_while_a_batch_is_in_flight(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    choose(at, "beta")  # b5 is running
    at.button(key="delete").click().run()
    at.button(key="delete_confirmed").click().run()

    assert any("has batch" in e and "in flight" in e for e in errors(at))
    assert "beta" in source_names(dashboard_env)
    assert audit(dashboard_env) == []


def test_a_second_refresh_is_refused_naming_the_batch_in_flight(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    choose(at, "beta")  # b5 is running
    at.button(key="refresh").click().run()
    b5 = seeded.batches["b5"]
    assert errors(at) == [
        f"Source 'beta' already has batch {b5} in flight (running); wait for it to finish, or decide on it "
        "if it awaits approval."
    ]
    assert ("batches", f"batch={b5}") in [
        (p.proto.page, p.proto.query_string) for p in at.main.get("page_link")
    ]
    with dashboard_env() as session:
        assert session.scalar(select(func.count()).select_from(Batch)) == len(seeded.batches)


def test_a_url_with_credentials_is_refused_with_what_to_do_and_never_shown(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    before = source_names(dashboard_env)
    at = open_page("sources")
    fill(at, name="private feed", kind="feed", location="https://ops:hunter2@127.0.0.1/feed.xml")
    submit(at, "Register")

    (error,) = [e for e in errors(at) if "credentials" in e]
    assert error.startswith("Location: https://***@127.0.0.1/feed.xml: the URL holds credentials")
    assert "a URL with credentials is not supported" in error
    assert "hunter2" not in "".join(e.value for e in at.error) + "".join(m.value for m in at.markdown)
    assert source_names(dashboard_env) == before
    assert audit(dashboard_env) == []


def test_a_url_stored_with_credentials_is_listed_without_them(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:  # stored before registration refused credentials
        repository.create_source(
            session, name="old", kind="feed", location="http://ops:hunter2@127.0.0.1/f.xml"
        )
    at = open_page("sources")

    shown = "\n".join(str(frame.value.to_csv()) for frame in at.dataframe)
    assert "http://***@127.0.0.1/f.xml" in shown and "hunter2" not in shown


def test_a_folder_given_a_url_says_which_kind_to_choose(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    fill(at, name="news", kind="folder", location="https://example.org/feed.xml")
    submit(at, "Register")
    assert errors(at) == [
        "Location: https://example.org/feed.xml is a URL, not a folder; choose the kind feed (RSS/Atom) or "
        "web (one page) for it."
    ]
    assert source_names(dashboard_env) == []


def test_a_preview_that_cannot_reach_the_location_warns_and_the_source_can_still_be_registered(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    fill(at, name="later", kind="feed", location=f"http://127.0.0.1:{free_port()}/feed.xml")
    submit(at, "Preview (dry run)")
    warned = [unescaped(w.value) for w in at.warning]
    assert any(
        w.startswith("The source cannot be reached now:") and "still be registered" in w for w in warned
    )
    assert not errors(at)
    submit(at, "Register")
    assert source_names(dashboard_env) == ["later"]


def test_refresh_with_temporal_down_says_so_and_leaves_no_batch(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    at = open_page("sources")
    choose(at, "alpha")
    at.button(key="refresh").click().run()

    assert any(
        e.startswith("The refresh was not started. Temporal unavailable at 127.0.0.1:") for e in errors(at)
    )
    with dashboard_env() as session:
        assert session.scalar(select(Batch.id).where(Batch.status == BatchStatus.PENDING)) is None


@pytest.mark.temporal
def test_refresh_starts_a_batch_workflow(
    fresh_dev_server: DevServer,
    monkeypatch: pytest.MonkeyPatch,
    seeded: Seeded,
    dashboard_env: sessionmaker[Session],
    open_page: OpenPage,
) -> None:
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", fresh_dev_server.address)

    async def prepare() -> None:
        await register_search_attributes(await Client.connect(fresh_dev_server.address), "default")

    asyncio.run(prepare())
    at = open_page("sources")
    choose(at, "alpha")
    at.button(key="refresh").click().run()

    assert not at.error, errors(at)
    with dashboard_env() as session:
        batch = session.scalars(select(Batch).order_by(Batch.id.desc())).first()
    assert batch is not None and batch.source_id == seeded.sources["alpha"] and batch.workflow_id
    assert any(f"Batch {batch.id} started for 'alpha'" in unescaped(s.value) for s in at.success)
    assert [(link.proto.page, link.proto.query_string) for link in at.main.get("page_link")] == [
        ("batches", f"batch={batch.id}")
    ]
    assert (OPERATOR, "refresh", f"source:{seeded.sources['alpha']}", f"batch {batch.id}") in audit(
        dashboard_env
    )

    async def described() -> str:
        client = await Client.connect(fresh_dev_server.address)
        return (await client.get_workflow_handle(batch.workflow_id or "").describe()).workflow_type

    assert asyncio.run(described()) == "BatchWorkflow"


@pytest.mark.temporal
def test_a_refused_start_leaves_the_batch_failed_not_pending(
    fresh_dev_server: DevServer,
    monkeypatch: pytest.MonkeyPatch,
    seeded: Seeded,
    dashboard_env: sessionmaker[Session],
    open_page: OpenPage,
) -> None:
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", fresh_dev_server.address)
    monkeypatch.setenv("LOREGUARD_TEMPORAL_NAMESPACE", "no-such-namespace")
    at = open_page("sources")
    choose(at, "alpha")
    at.button(key="refresh").click().run()

    assert any(e.startswith("The refresh was not started.") for e in errors(at))
    with dashboard_env() as session:
        newest = session.scalars(select(Batch).order_by(Batch.id.desc())).first()
    assert newest is not None and newest.status == BatchStatus.FAILED and newest.error_type == "NotStarted"
    assert newest.error_message and "could not be started" in newest.error_message


FEED = """<?xml version="1.0" encoding="UTF-8"?>
<rss version="2.0"><channel><title>Notes</title><link>https://notes.example.org/</link><description>x</description>
<item><title>Ransomware group targets backups</title><link>https://notes.example.org/a</link>
<description>The group deletes backups before encrypting servers, then asks for money.</description></item>
<item><title>Patch notes for March</title><link>https://notes.example.org/b</link>
<description>Twelve fixes, two of them critical, for the VPN appliance.</description></item>
</channel></rss>"""


def test_dry_run_of_a_feed_and_of_a_feed_that_answers_404(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with StaticSite({"/feed.xml": (200, "application/rss+xml", FEED)}) as site:
        at = open_page("sources")
        fill(at, name="notes", kind="feed", location=site.url_for("/feed.xml"))
        submit(at, "Preview (dry run)")
        assert not at.error, errors(at)
        preview = next(d for d in at.dataframe if "problem" in d.value.columns).value
        assert list(preview["title"]) == ["Ransomware group targets backups", "Patch notes for March"]
        assert list(preview["uri"]) == ["https://notes.example.org/a", "https://notes.example.org/b"]

        fill(at, name="notes", kind="feed", location=site.url_for("/missing.xml"))
        submit(at, "Preview (dry run)")
        assert any(e.startswith("The source cannot be read:") and "404" in e for e in errors(at))
    assert source_names(dashboard_env) == []


def test_dry_run_refuses_an_internal_address_the_operator_did_not_allow(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The form refuses an address the policy forbids before anything is fetched, as the worker would."""
    monkeypatch.delenv("LOREGUARD_ALLOWED_HOSTS")
    with StaticSite({"/feed.xml": (200, "application/rss+xml", FEED)}) as site:
        at = open_page("sources")
        fill(at, name="internal", kind="feed", location=site.url_for("/feed.xml"))
        submit(at, "Preview (dry run)")
        assert site.calls == 0
    refused = [e for e in errors(at) if e.startswith("Location:")]
    assert len(refused) == 1 and "127.0.0.1" in refused[0] and "loopback" in refused[0]
    assert "LOREGUARD_ALLOWED_HOSTS" in refused[0]
    assert not any("problem" in d.value.columns for d in at.dataframe)
    assert source_names(dashboard_env) == []


def test_a_source_that_delivers_nothing_new_or_keeps_failing_is_flagged_stale(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    long_ago = utcnow() - timedelta(days=2)
    with dashboard_env.begin() as session:
        silent = repository.create_source(
            session, name="silent feed", kind="feed", location="https://x.org/f"
        )
        silent.created_at = long_ago
        for _ in range(3):  # its last three refreshes failed
            batch = repository.create_batch(session, source_id=silent.id)
            batch.status, batch.started_at, batch.finished_at = "failed", long_ago, long_ago
    at = open_page("sources")
    table = at.dataframe[0].value.set_index("name")
    assert table.loc["silent feed", "freshness"] == (
        "stale: its last 3 refreshes failed; no document at all for 2 d (it refreshes every 60 min; stale "
        "after 2 h)"
    )
    assert table.loc["silent feed", "failed batches"] == "batches?source=silent%20feed&status=failed&n=3"
    assert any("Stale: " in unescaped(w.value) and "silent feed" in unescaped(w.value) for w in at.warning)
