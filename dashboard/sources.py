"""The Sources page's tables: sources with their totals and schedule times, and a dry run's documents.

Actions on sources are in the operations layer (operations/sources.py); this module only shapes what they return.
"""

from __future__ import annotations

from collections.abc import Sequence
from urllib.parse import quote, urlencode

import pandas as pd
from temporalio.client import Client
from temporalio.service import RPCError

from core.urls import without_userinfo
from dashboard.formatting import every, status_word
from data import repository
from operations.sources import PreviewRow
from orchestration.gateway import TemporalGateway, TemporalUnavailable
from orchestration.schedules import ScheduleTimes, describe_source_schedules

PREVIEW_COLUMNS = ["title", "uri", "type", "bytes", "language", "words", "problem"]


def preview_frame(rows: Sequence[PreviewRow]) -> pd.DataFrame:
    return pd.DataFrame(
        [[r.title, r.uri, r.content_type, r.size, r.language, r.words, r.problem] for r in rows],
        columns=PREVIEW_COLUMNS,
    )


def schedule_times(gateway: TemporalGateway, source_ids: list[int]) -> dict[int, ScheduleTimes] | None:
    """Next and last run per source as its schedule reports them; None when Temporal does not answer."""

    async def describe(client: Client) -> dict[int, ScheduleTimes]:
        return await describe_source_schedules(client, source_ids)

    try:
        return gateway.call(describe, timeout=5.0)
    except (TemporalUnavailable, RPCError, TimeoutError):
        return None


def with_schedule_times(frame: pd.DataFrame, times: dict[int, ScheduleTimes] | None) -> pd.DataFrame:
    """The sources table with "next run" and "last run" columns (empty when Temporal is unavailable)."""
    frame = frame.copy()
    known = times or {}
    frame["next run"] = [known[i].next_run if i in known else None for i in frame["id"]]
    frame["last run"] = [known[i].last_run if i in known else None for i in frame["id"]]
    frame["next run"] = pd.to_datetime(frame["next run"], utc=True)
    frame["last run"] = pd.to_datetime(frame["last run"], utc=True)
    return frame


SUMMARY_COLUMNS = [
    "id",
    "name",
    "freshness",
    "kind",
    "location",
    "refreshes",
    "paused",
    "batches",
    "failed batches",
    "documents",
    "failed documents",
    "last refresh",
    "last status",
]


def batches_link(name: str, count: int, status: str | None = None) -> str:
    """A link to the Batches page filtered to the source (and status), shown as the count (LinkColumn's
    display_text reads it back from the address)."""
    query = {"source": name, **({"status": status} if status else {}), "n": str(count)}
    return "batches?" + urlencode(query, quote_via=quote)


COUNT_LINK = r"n=(\d+)$"


def summary_frame(
    summaries: list[repository.SourceSummary], freshness: dict[int, str | None] | None = None
) -> pd.DataFrame:
    """The sources table: one row per source with its freshness, totals (the batch counts are links to its
    batches) and last refresh."""
    fresh = freshness or {}
    return pd.DataFrame(
        [
            [
                s.id,
                s.name,
                "paused" if s.paused else (f"stale: {fresh[s.id]}" if fresh.get(s.id) else "fresh"),
                s.kind,
                without_userinfo(s.location),  # one stored before registration refused credentials
                every(s.refresh_interval_seconds),
                s.paused,
                batches_link(s.name, s.batches),
                batches_link(s.name, s.failed_batches, "failed"),
                s.documents,
                s.errors,
                s.last_refresh,
                status_word(s.last_status) if s.last_status else "never",
            ]
            for s in summaries
        ],
        columns=SUMMARY_COLUMNS,
    )
