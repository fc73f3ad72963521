"""Library: stored documents with their evaluation, search, filters, paging and the CSV export."""

from __future__ import annotations

import csv
import io

import pytest
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from dashboard import library, views
from tests.dashboard.conftest import OpenPage
from tests.dashboard.seed import HOSTILE, Seeded


def count_caption(at: AppTest) -> str:
    return str(at.caption[0].value)


def test_newest_first_with_label_confidence_rationale_source(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library")
    total = len(seeded.stored_at)
    assert count_caption(at).startswith(f"{total} document(s) match")

    page = at.dataframe[0].value
    assert len(page) == 50  # a page, never the whole table
    assert list(page.columns) == library.LIBRARY_COLUMNS
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


def test_csv_export_is_offered_with_its_cap_stated(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library")
    assert [b.label for b in at.download_button] == ["Download CSV"]
    assert any(f"at most {library.EXPORT_CAP:,} rows" in c.value for c in at.caption)


@pytest.mark.parametrize(
    ("title", "cell"),
    [
        ("=HYPERLINK(1)", "'=HYPERLINK(1)"),
        ("+1+cmd", "'+1+cmd"),
        ("-2", "'-2"),
        ("@SUM(A1)", "'@SUM(A1)"),
        ("\t=cmd|' /C calc'!A0", "'\t=cmd|' /C calc'!A0"),
        ("\r=1+1", "'\r=1+1"),
        ("plain", "plain"),
        ("a\tb", "a\tb"),
    ],
    ids=["equals", "plus", "minus", "at", "leading-tab", "leading-cr", "plain", "inner-tab"],
)
def test_csv_cells_cannot_become_spreadsheet_formulas(title: str, cell: str) -> None:
    assert library._csv_cell(title) == cell


def test_the_hostile_title_is_a_plain_cell(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library", q="<script>")
    page = at.dataframe[0].value
    assert list(page["title"]) == [HOSTILE]
    assert list(page["source"]) == [HOSTILE]
