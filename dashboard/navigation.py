"""The dashboard's pages for st.navigation, titled with what waits for an operator: batches awaiting approval
and open SLA breaches (counted in SQL, cached a few seconds), and a sidebar line that keeps them live."""

from __future__ import annotations

from dataclasses import dataclass

import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from dashboard import queries
from dashboard.components import APPROVALS_PAGE, LIVE_SECONDS, REVIEW_PAGE, SLA_PAGE
from dashboard.db import DatabaseUnavailable, reading, settings
from data import repository


@dataclass(frozen=True)
class Waiting:
    awaiting_approval: int
    open_breaches: int
    awaiting_review: int = 0


@st.cache_data(ttl=LIVE_SECONDS - 1, show_spinner=False)
def _waiting(db: str) -> Waiting:
    with reading() as session:
        return Waiting(
            queries.awaiting_approval(session),
            queries.open_sla_breaches(session),
            repository.count_waiting(session),
        )


def waiting() -> Waiting | None:
    """The counts, or None when the database cannot be read (the page itself says so)."""
    try:
        return _waiting(settings().target_database_url)
    except (DatabaseUnavailable, SQLAlchemyError):
        return None


def pages() -> list[st.Page]:
    counts = waiting()
    approvals = "Approvals" + (
        f" ({counts.awaiting_approval})" if counts and counts.awaiting_approval else ""
    )
    review = "Review" + (f" ({counts.awaiting_review})" if counts and counts.awaiting_review else "")
    sla = "SLA" + (f" ({counts.open_breaches} open)" if counts and counts.open_breaches else "")
    return [
        st.Page("../pages/overview.py", title="Overview", icon=":material/dashboard:", default=True),
        st.Page("../pages/sources.py", title="Sources", icon=":material/source:"),
        st.Page("../pages/batches.py", title="Batches", icon=":material/stacks:"),
        st.Page("../pages/library.py", title="Library", icon=":material/library_books:"),
        st.Page(REVIEW_PAGE, title=review, icon=":material/rate_review:"),
        st.Page("../pages/document.py", title="Document", icon=":material/description:", visibility="hidden"),
        st.Page(APPROVALS_PAGE, title=approvals, icon=":material/approval:"),
        st.Page("../pages/audit.py", title="Audit", icon=":material/history:"),
        st.Page("../pages/workers.py", title="Workers", icon=":material/memory:"),
        st.Page(SLA_PAGE, title=sla, icon=":material/timer:"),
        st.Page("../pages/users.py", title="Users", icon=":material/group:"),
    ]


@st.fragment(run_every=LIVE_SECONDS)
def live_counts() -> None:
    """In the sidebar: what waits now, refreshed without reloading (the page titles follow on navigation)."""
    counts = waiting()
    if counts is None:
        return
    st.page_link(
        APPROVALS_PAGE,
        label=f"{counts.awaiting_approval} batch(es) awaiting approval",
        icon=":material/approval:",
    )
    st.page_link(SLA_PAGE, label=f"{counts.open_breaches} open SLA breach(es)", icon=":material/timer:")
