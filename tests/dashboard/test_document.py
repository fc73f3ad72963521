"""The document page (?doc=ID) and what leads to it: each content once in the library, seen N times, duplicates
and sightings linked, text only for the roles that may read it, and the CSV with the text."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from core.vocabulary import ArtifactStatus
from data import repository
from data.models import Artifact, AuditEvent, Evaluation, utcnow
from tests.dashboard.conftest import ISSUER, Downloads, OpenPage, unescaped
from tests.dashboard.seed import Seeded

HASH = "c0ffee" * 10 + "abcd"


def person(role: str) -> dict[str, object]:
    email = f"{role}@example.org"
    return {
        "is_logged_in": True,
        "iss": ISSUER,
        "sub": email,
        "email": email,
        "email_verified": True,
        "groups": [role],
    }


@pytest.fixture
def copies(seeded: Seeded, dashboard_env: sessionmaker[Session]) -> dict[str, int]:
    """One content gathered four times: stored by alpha, found unchanged by alpha's next batch, stored again
    by beta as an exact duplicate; and a near duplicate of it."""
    now = utcnow()
    ids: dict[str, int] = {}
    with dashboard_env.begin() as session:
        alpha, beta = seeded.sources["alpha"], seeded.sources["beta"]
        b1 = repository.create_batch(session, source_id=alpha)
        b2 = repository.create_batch(session, source_id=alpha)
        b3 = repository.create_batch(session, source_id=beta)
        session.flush()

        def add(
            batch_id: int, source_id: int, status: str, hours_ago: int, seq: int = 0, **extra: object
        ) -> Artifact:
            art = Artifact(
                batch_id=batch_id,
                source_id=source_id,
                seq=seq,
                uri="https://example.org/advisory-7.html",
                content_type="text/html",
                status=status,
                title="Advisory 7: VPN zero-day exploited",
                language="en",
                text="Attackers exploit a VPN zero-day; patch now.",
                word_count=7,
                content_hash=extra.pop("content_hash", HASH),
                ingested_at=now - timedelta(hours=hours_ago),
                stored_at=now - timedelta(hours=hours_ago) if status == ArtifactStatus.STORED else None,
                **extra,
            )
            session.add(art)
            session.flush()
            return art

        original = add(b1.id, alpha, ArtifactStatus.STORED, 30)
        session.add(
            Evaluation(
                artifact_id=original.id,
                label="relevant",
                confidence=0.91,
                relevance=0.88,
                credibility=0.75,
                rationale="mentions vpn, zero-day and exploit; " + "a long rationale " * 20 + "END",
                evaluator="openai",
                model="gpt-4o-mini",
                topics_version="5f1c0ffee123",
            )
        )
        unchanged = add(b2.id, alpha, ArtifactStatus.UNCHANGED, 5, duplicate_of_id=original.id)
        duplicate = add(b3.id, beta, ArtifactStatus.STORED, 2, duplicate_of_id=original.id)
        near = add(
            b3.id,
            beta,
            ArtifactStatus.STORED,
            1,
            seq=1,
            content_hash="f" * 64,
            near_duplicate_of_id=original.id,
            similarity=0.93,
        )
        ids = {
            "original": original.id,
            "unchanged": unchanged.id,
            "duplicate": duplicate.id,
            "near": near.id,
            "batch": b1.id,
        }
    return ids


def test_the_library_lists_each_content_once_with_how_often_it_was_seen(
    copies: dict[str, int], open_page: OpenPage
) -> None:
    at = open_page("library", q="advisory")
    page = at.dataframe[0].value
    assert sorted(page["id"]) == sorted([copies["original"], copies["near"]])  # not the exact duplicate
    row = page[page["id"] == copies["original"]].iloc[0]
    assert row["seen"] == 3  # stored, unchanged, and beta's copy
    assert row["first seen"] < row["last seen"]
    assert row["open"] == f"document?doc={copies['original']}"


def test_an_analyst_reads_the_whole_document(copies: dict[str, int], open_page: OpenPage) -> None:
    at = open_page("document", user=person("analyst"), doc=str(copies["original"]))
    assert unescaped(at.subheader[0].value) == "Advisory 7: VPN zero-day exploited"  # escaped, reads as typed
    assert at.text_area(key="doc_text").value == "Attackers exploit a VPN zero-day; patch now."
    shown = "\n".join([t.value for t in at.text] + [unescaped(c.value) for c in at.caption])
    assert shown.count("a long rationale") == 20 and "END" in shown  # the rationale in full
    assert "evaluator openai · model gpt-4o-mini · topics version 5f1c0ffee123" in shown
    assert {m.label: m.value for m in at.metric} == {
        "Label": "relevant",
        "Relevance": "0.88",
        "Credibility": "0.75",
    }
    frames = {d.proto.id.rsplit("-", 1)[-1]: d.value for d in at.dataframe}
    exact = at.dataframe[0].value
    assert list(exact["document"]) == [f"document?doc={copies['duplicate']}"]
    near = at.dataframe[1].value
    assert list(near["document"]) == [f"document?doc={copies['near']}"]
    seen = at.dataframe[2].value
    assert list(seen["document"]) == [
        f"document?doc={copies[k]}" for k in ("original", "unchanged", "duplicate")
    ]
    assert list(seen["status"]) == ["stored", "unchanged", "stored"]
    assert any("Seen 3 time(s)" in unescaped(m.value) for m in at.markdown)
    links = [p.proto.label for p in at.get("page_link")]
    assert f"Batch {copies['batch']} of alpha" in links
    assert frames  # keyed frames render


def test_a_viewer_sees_no_text_and_is_told_why(
    copies: dict[str, int], open_page: OpenPage, dashboard_env: sessionmaker[Session]
) -> None:
    at = open_page("document", user=person("viewer"), doc=str(copies["original"]))
    assert not at.get("text_area")
    captions = [unescaped(c.value) for c in at.caption]
    assert (
        "You need the analyst or operator or admin role to see document text (you have: viewer)." in captions
    )
    with dashboard_env() as session:  # hiding is not the check, but nothing was attempted either
        assert not session.scalars(select(AuditEvent).where(AuditEvent.action == "refused:read_text")).all()


def test_a_duplicate_links_to_its_original(copies: dict[str, int], open_page: OpenPage) -> None:
    at = open_page("document", user=person("analyst"), doc=str(copies["duplicate"]))
    links = [p.proto.label for p in at.get("page_link")]
    assert f"Original: document {copies['original']}" in links


def test_an_unknown_document_is_said_so(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("document", doc="999999")
    assert [w.value for w in at.warning] == ["There is no document 999999."]


def test_the_csv_carries_the_text_only_when_asked_and_allowed(
    copies: dict[str, int], open_page: OpenPage, downloads: Downloads
) -> None:
    at = open_page("library", user=person("analyst"), q="advisory")
    plain = list(csv.DictReader(io.StringIO(downloads.served(at, "library_csv").data.decode())))
    assert "text" not in plain[0]
    at.checkbox(key="library_csv_text").check().run()
    rows = list(csv.DictReader(io.StringIO(downloads.served(at, "library_csv").data.decode())))
    assert {r["text"] for r in rows if r["id"] == str(copies["original"])} == {
        "Attackers exploit a VPN zero-day; patch now."
    }

    manager = open_page("library", user=person("manager"))  # may not export at all
    assert not manager.get("download_button")
