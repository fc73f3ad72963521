"""Small Streamlit building blocks shared by the pages: page paths, literal text, failure notices, paging."""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from typing import Any

import pandas as pd
import streamlit as st
from sqlalchemy.exc import SQLAlchemyError

from dashboard import formatting
from dashboard.db import DatabaseUnavailable
from dashboard.db import unavailable as unavailable_database
from dashboard.text import literal as literal  # re-exported: the pages import it from here

# Page scripts as st.page_link wants them: relative to the entrypoint, dashboard/app.py.
SOURCES_PAGE = "../pages/sources.py"
BATCHES_PAGE = "../pages/batches.py"
LIBRARY_PAGE = "../pages/library.py"
DOCUMENT_PAGE = "../pages/document.py"
APPROVALS_PAGE = "../pages/approvals.py"
REVIEW_PAGE = "../pages/review.py"
SLA_PAGE = "../pages/sla.py"

LIVE_SECONDS = 5  # how often the live parts refresh


def zone_name() -> str:
    """LOREGUARD_TIMEZONE: the one zone every page, chart and export shows times in."""
    from dashboard.db import settings

    return settings().timezone


def when(value: datetime | None) -> str:
    """A time in the configured zone, labelled ('2026-12-02 10:15:03 CET'); '—' when there is none."""
    return formatting.when(value, zone_name())


def table(
    frame: pd.DataFrame, *, key: str, column_config: dict[str, Any] | None = None, **kwargs: Any
) -> Any:
    """st.dataframe with every time moved to the configured zone and its column labelled with the zone, and a
    dash wherever a time or a text is missing (never "None")."""
    zone = zone_name()
    given = dict(column_config or {})
    formats = {
        name: c["type_config"].get("format")
        for name, c in given.items()
        if isinstance(c, dict) and c.get("type_config", {}).get("type") == "datetime"
    }
    shown, texted = formatting.dashed(formatting.in_zone(frame, zone), formats)
    config: dict[str, Any] = {}
    for name in shown.columns:
        if isinstance(shown[name].dtype, pd.DatetimeTZDtype):
            config[str(name)] = st.column_config.DatetimeColumn(
                f"{name} ({zone})", format="YYYY-MM-DD HH:mm:ss", timezone=zone
            )
    for name in texted:  # times with a gap, shown as text in the zone: keep the label the time column had
        label = (given.pop(name, None) or {}).get("label") or f"{name} ({zone})"
        config[name] = st.column_config.TextColumn(label)
    config.update(given)
    kwargs.setdefault("hide_index", True)
    return st.dataframe(shown, key=key, column_config=config, **kwargs)


@contextmanager
def database_required() -> Iterator[None]:
    """Stops the page with a readable notice when the library database cannot be read."""
    try:
        yield
    except (DatabaseUnavailable, SQLAlchemyError) as exc:
        if isinstance(exc, SQLAlchemyError):  # from an operation, which uses the sessions directly
            exc = unavailable_database(exc)
        st.error(f"The library database is not available: {literal(exc)}", icon=":material/error:")
        st.info("Start the stack with `loreguard up`, or apply the migrations with `loreguard migrate`.")
        st.stop()


def unavailable(part: str, reason: object) -> None:
    """A notice that one part of a page is unavailable; the rest of the page still renders."""
    st.warning(f"{part} unavailable. {literal(reason)}", icon=":material/cloud_off:")


def pager(total: int, page_size: int, *, key: str) -> int:
    """A page picker under a table; returns the offset of the chosen page."""
    pages = max(1, math.ceil(total / page_size))
    if pages == 1:
        return 0
    page = st.pagination(pages, key=key, max_visible_pages=7)
    return (min(page, pages) - 1) * page_size
