"""Where a value is missing, the pages show a dash or a sentence, never "None" (which Streamlit draws for a
missing cell): a source never refreshed, schedule times while Temporal is down, a document without a date or
duplicates."""

from __future__ import annotations

import pandas as pd
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from dashboard.formatting import dashed, strftime_format
from data import repository
from data.models import Artifact
from tests.dashboard.conftest import OpenPage, unescaped
from tests.dashboard.seed import Seeded


def missing_cells(at: AppTest) -> list[str]:
    """The columns with a cell the browser would draw as None, in any table of the page."""
    return [
        str(column) for df in at.dataframe for column in df.value.columns if df.value[column].isna().any()
    ]


def test_sources_show_a_dash_for_a_source_never_refreshed_and_schedule_times_temporal_cannot_give(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:
        repository.create_source(session, name="never refreshed", kind="folder", location="/srv/new")

    at = open_page("sources")  # Temporal is not there: no schedule times

    table = at.dataframe[0].value.set_index("name")
    assert table.loc["never refreshed", "last refresh"] == "—"
    assert table.loc["never refreshed", "last status"] == "never"
    assert set(table["next run"]) == {"—"} and set(table["last run"]) == {"—"}
    # the refreshed ones keep their time, in the configured zone (the header says which)
    assert table.loc["alpha", "last refresh"][:2] == "20"
    assert '"last refresh": {"label": "last refresh (UTC)"' in at.dataframe[0].proto.columns
    assert missing_cells(at) == []


def test_library_rows_without_a_published_date_show_a_dash(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library")

    rows = at.dataframe[0].value
    assert set(rows["published"]) == {"—"}  # the seeded documents carry no date
    assert missing_cells(at) == []


def test_a_document_without_duplicates_says_so(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env() as session:
        doc = session.scalars(select(Artifact.id).where(Artifact.status == "stored")).first()

    at = open_page("document", doc=str(doc))

    captions = [unescaped(c.value) for c in at.caption]
    assert "No other document holds the same content." in captions
    assert "No document with nearly the same text." in captions
    assert "None." not in captions
    assert missing_cells(at) == []


def test_times_with_a_gap_keep_their_format_as_text() -> None:

    frame = pd.DataFrame(
        {
            "at": pd.to_datetime(["2026-12-02T10:15:03Z", None], utc=True),
            "day": pd.to_datetime(["2026-12-02T10:15:03Z", "2026-12-03T00:00:00Z"], utc=True),
            "who": ["ana", None],
            "n": [1, 2],
        }
    )

    shown, texted = dashed(frame, {"at": "YYYY-MM-DD HH:mm"})

    assert texted == ["at"]  # "day" has no gap: it stays a time column
    assert list(shown["at"]) == ["2026-12-02 10:15", "—"]
    assert list(shown["who"]) == ["ana", "—"]
    assert shown["day"].dtype == frame["day"].dtype and list(shown["n"]) == [1, 2]
    assert strftime_format("YYYY-MM-DD") == "%Y-%m-%d" and strftime_format(None) == "%Y-%m-%d %H:%M:%S"
