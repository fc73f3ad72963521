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


# What a person scans for first (the name, which opens its batches, whether it is fresh, how its last refresh
# went) before the totals and the settings, so a 1440 px screen shows it without scrolling sideways. "name"
# stays in the frame as the plain key; the page shows "source", its link.
SUMMARY_COLUMNS = [
    "id",
    "name",
    "source",
    "freshness",
    "last status",
    "last refresh",
    "batches",
    "failed batches",
    "documents",
    "failed documents",
    "kind",
    "refreshes",
    "paused",
    "location",
]


def batches_link(name: str, count: int | None = None, status: str | None = None) -> str:
    """A link to the Batches page filtered to the source (and status). With `count`, it is shown as the count
    (COUNT_LINK); without, as the source's name (NAME_LINK): LinkColumn's display_text reads either back from
    the address, decoded."""
    query = {"source": name, **({"status": status} if status else {})}
    if count is not None:
        query["n"] = str(count)
    return "batches?" + urlencode(query, quote_via=quote)


NAME_LINK = r"source=([^&]*)$"
COUNT_LINK = r"n=(\d+)$"


def summary_frame(
    summaries: list[repository.SourceSummary],
    freshness: dict[int, str | None] | None = None,
    *,
    with_tokens: bool = False,
    price: float | None = None,
) -> pd.DataFrame:
    """The sources table: one row per source with its freshness, last refresh and totals (the name and the
    batch counts are links to its batches); `with_tokens`: the tokens a model evaluator's API reported for
    its documents and, with a price per million tokens, their cost."""
    fresh = freshness or {}
    frame = pd.DataFrame(
        [
            [
                s.id,
                s.name,
                batches_link(s.name),
                "paused" if s.paused else (f"stale: {fresh[s.id]}" if fresh.get(s.id) else "fresh"),
                status_word(s.last_status) if s.last_status else "never",
                s.last_refresh,
                batches_link(s.name, s.batches),
                batches_link(s.name, s.failed_batches, "failed"),
                s.documents,
                s.errors,
                s.kind,
                every(s.refresh_interval_seconds),
                s.paused,
                without_userinfo(s.location),  # one stored before registration refused credentials
            ]
            for s in summaries
        ],
        columns=SUMMARY_COLUMNS,
    )
    if with_tokens:
        at = SUMMARY_COLUMNS.index("failed documents") + 1
        frame.insert(at, "tokens", [s.tokens for s in summaries])
        if price is not None:
            frame.insert(at + 1, "cost", [round(s.tokens / 1e6 * price, 2) for s in summaries])
    return frame
