"""Tables fit a 1440 px screen without hiding what a person scans for: each table shows its status (how long
is left, freshness, the label) and its link before the counts and settings."""

from __future__ import annotations

from datetime import timedelta

from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from data.models import Batch, utcnow
from tests.dashboard.conftest import OpenPage
from tests.dashboard.seed import Seeded


def shown_columns(at: AppTest, having: str) -> list[str]:
    """The columns of the table with column `having`, in the order the browser draws them (column_order
    when the page sets one)."""
    (frame,) = [d for d in at.dataframe if having in d.value.columns]
    return list(frame.proto.column_order) or list(frame.value.columns)


def test_approvals_show_the_time_left_and_the_error_beside_the_batch(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:
        b4 = session.get_one(Batch, seeded.batches["b4"])
        b4.decision_deadline = utcnow() + timedelta(hours=2)

    columns = shown_columns(open_page("approvals"), "time left")

    assert columns[:6] == ["batch", "source", "time left", "failed stage", "error type", "error"]


def test_sources_show_freshness_and_the_last_refresh_before_the_settings(
    seeded: Seeded, open_page: OpenPage
) -> None:
    columns = shown_columns(open_page("sources"), "freshness")

    assert columns[:5] == ["id", "source", "freshness", "last status", "last refresh"]
    assert columns.index("failed batches") < columns.index("kind") < columns.index("location")
    assert "name" not in columns  # the source's name shows once, as the link to its batches


def test_the_library_shows_the_link_to_each_document_first_and_its_label_early(
    seeded: Seeded, open_page: OpenPage
) -> None:
    columns = shown_columns(open_page("library"), "rationale")

    assert columns[0] == "open"
    assert columns.index("label") < 5
