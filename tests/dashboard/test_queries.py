"""The dashboard's SQL on SQLite and on PostgreSQL: the same figures from both dialects."""

from __future__ import annotations

import csv
import io
from datetime import timedelta
from zoneinfo import ZoneInfo

from sqlalchemy.orm import Session, sessionmaker

from dashboard import library, queries
from tests.dashboard.seed import HOSTILE, seed_library


def test_aggregates_agree_on_both_databases(session_factory: sessionmaker[Session]) -> None:
    seeded = seed_library(session_factory)
    with session_factory() as s:
        assert queries.stored_since(s, since=seeded.now - timedelta(hours=1)) == seeded.stored_since(
            timedelta(hours=1)
        )
        frame = queries.throughput(s, until=seeded.now)
        assert len(frame) == 24
        assert frame["documents"].sum() == seeded.stored_since(timedelta(hours=24))
        assert frame["interval"].iloc[-1] <= seeded.now < frame["interval"].iloc[-1] + timedelta(hours=1)
        assert frame["documents"].iloc[-1] == sum(
            1 for t in seeded.stored_at if t >= frame["interval"].iloc[-1]
        )
        assert queries.open_sla_breaches(s) == 2
        assert queries.awaiting_approval(s) == 1

        summaries = {x.name: x for x in queries.source_summaries(s)}
        assert (summaries["alpha"].batches, summaries["alpha"].documents, summaries["alpha"].errors) == (
            2,
            5,
            1,
        )
        assert summaries["beta"].last_status == "running"
        assert (
            summaries["beta"].last_refresh is not None and summaries["beta"].last_refresh.tzinfo is not None
        )

        assert queries.count_batches(s, queries.BatchFilter(status="completed")) == 3
        assert queries.count_batches(s, queries.BatchFilter(since=seeded.now - timedelta(hours=24))) == 4
        assert len(queries.batch_page(s, queries.BatchFilter(), limit=2, offset=1)) == 2


def test_library_search_filters_and_options_on_both_databases(session_factory: sessionmaker[Session]) -> None:
    seeded = seed_library(session_factory)
    with session_factory() as s:
        assert library.library_count(s, library.LibraryFilter()) == (len(seeded.stored_at), False)
        assert library.library_count(s, library.LibraryFilter(), cap=10) == (10, True)
        assert library.library_count(s, library.LibraryFilter(search="B2 Report"))[0] == 4
        # full-text search: punctuation alone holds no word to search for, so it filters nothing
        assert library.library_count(s, library.LibraryFilter(search="%"))[0] == len(seeded.stored_at)
        page = library.library_page(s, library.LibraryFilter(search="<script>"))
        assert list(page["title"]) == [HOSTILE]
        assert (
            library.library_count(s, library.LibraryFilter(label="review"))[0]
            == seeded.stored_by_label["review"]
        )
        assert library.library_labels(s) == ["irrelevant", "relevant", "review"]
        assert library.library_languages(s) == ["de", "en"]
        day = seeded.now.date()
        assert library.library_count(s, library.LibraryFilter(stored_from=day, stored_to=day))[0] == sum(
            1 for t in seeded.stored_at if t.date() == day
        )
        for zone in ("Pacific/Kiritimati", "America/Los_Angeles"):  # UTC+14 and UTC-8/-7: dates of the zone
            local = [t.astimezone(ZoneInfo(zone)).date() for t in seeded.stored_at]
            f = library.LibraryFilter(stored_from=local[-1], stored_to=local[-1], zone=zone)
            assert library.library_count(s, f)[0] == local.count(local[-1])
        rows = list(csv.DictReader(io.StringIO(library.library_csv(s, library.LibraryFilter(), chunk=7))))
        assert len(rows) == len(seeded.stored_at)
        assert len({r["id"] for r in rows}) == len(rows)
