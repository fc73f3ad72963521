"""What the pages show: short-lived cached reads of the library (SQL in dashboard.queries) and of Temporal.

Every function is keyed by the database URL or the Temporal address, so caches never mix two deployments;
failures are not cached (Streamlit does not cache exceptions), so a recovered part shows on the next run.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from core.freshness import stale_reason
from core.vocabulary import BatchStatus
from dashboard import approvals, documents, library, metrics, queries, task_queues, temporal
from dashboard.db import operations_context, reading, sessions, settings
from dashboard.formatting import duration, when
from data import repository
from operations import Actor
from operations import documents as documents_ops
from operations import reevaluations as reevaluations_ops
from operations import reviews as reviews_ops
from orchestration.types import BatchProgress

SourceSummary = repository.SourceSummary  # the sources table's row type, for the pages
ReviewFilter = repository.ReviewFilter  # the review inbox filter, for the pages

LIVE_TTL = 3  # seconds: a little under the live refresh, so every refresh reads fresh figures
LIST_TTL = 5
OPTIONS_TTL = 60


def db_key() -> str:
    return settings().target_database_url


def temporal_key() -> tuple[str, str]:
    s = settings()
    return s.target_temporal_address, s.temporal_namespace


# --- overview -------------------------------------------------------------------------------------------


@dataclass(frozen=True)
class OverviewFigures:
    stored_last_hour: int
    stored_last_day: int
    open_sla_breaches: int
    awaiting_approval: int
    throughput: pd.DataFrame  # interval, documents (hourly, last 24 h)
    ended_last_day: dict[str, int]  # batches finished in the last 24 h, per status
    as_of: datetime


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def overview_figures(db: str) -> OverviewFigures:
    now = datetime.now(UTC)
    with reading() as session:
        return OverviewFigures(
            stored_last_hour=queries.stored_since(session, since=now - timedelta(hours=1)),
            stored_last_day=queries.stored_since(session, since=now - timedelta(hours=24)),
            open_sla_breaches=queries.open_sla_breaches(session),
            awaiting_approval=queries.awaiting_approval(session),
            throughput=queries.throughput(session, until=now),
            ended_last_day=queries.batches_ended_since(session, since=now - timedelta(hours=24)),
            as_of=now,
        )


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def workflow_counts(address: str, namespace: str) -> pd.DataFrame:
    return temporal.workflow_status_counts(temporal.gateway())


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def queue_backlog(address: str, namespace: str) -> pd.DataFrame:
    return task_queues.backlog_frame(task_queues.describe_queues(temporal.gateway()))


# --- sources --------------------------------------------------------------------------------------------


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def source_summaries(db: str) -> list[repository.SourceSummary]:
    with reading() as session:
        return queries.source_summaries(session, with_tokens=settings().shows_tokens)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def source_freshness(db: str) -> dict[int, str | None]:
    """Source id -> why it is stale (None: fresh), by core.freshness from the library's figures."""
    s = settings()
    now = datetime.now(UTC)
    with reading() as session:
        activity = repository.source_activity(session, recent=s.stale_after_failures)
    return {
        a.source_id: stale_reason(
            now=now,
            interval_seconds=a.interval_seconds,
            paused=a.paused,
            registered_at=a.registered_at,
            last_new_document=a.last_new_document,
            recent_statuses=a.recent_statuses,
            after_intervals=s.stale_after_intervals,
            after_failures=s.stale_after_failures,
        )
        for a in activity
    }


@st.cache_data(ttl=OPTIONS_TTL, show_spinner=False)
def source_options(db: str) -> dict[int, str]:
    with reading() as session:
        return queries.source_options(session)


def forget_sources() -> None:
    """After a change to sources: the next run reads them afresh."""
    source_summaries.clear()
    source_freshness.clear()
    source_options.clear()


# --- batches --------------------------------------------------------------------------------------------


# The list's figures are read afresh on every live refresh (LIVE_TTL), as the batch's own page's are, so the
# two agree on a running batch's progress.
@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def batch_count(db: str, f: queries.BatchFilter) -> int:
    with reading() as session:
        return queries.count_batches(session, f)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def batch_page(db: str, f: queries.BatchFilter, limit: int, offset: int) -> pd.DataFrame:
    with reading() as session:
        return queries.batch_page(session, f, limit=limit, offset=offset)


@st.cache_data(ttl=1, show_spinner=False)
def batch_detail(db: str, batch_id: int) -> queries.BatchDetail | None:
    with reading() as session:
        return queries.batch_detail(session, batch_id=batch_id)


@dataclass(frozen=True)
class BatchFigures:
    done: int
    total: int
    counts: dict[str, int]  # artifacts per status
    timings: pd.DataFrame  # stage, mean ms
    tokens: int = 0  # what a model evaluator's API reported for the batch
    progress: queries.Progress | None = None  # as the Batches list shows it (None: no such batch)


@st.cache_data(ttl=1, show_spinner=False)
def batch_figures(db: str, batch_id: int) -> BatchFigures:
    with reading() as session:
        batch = queries.batch_detail(session, batch_id=batch_id)
        progress = queries.batch_progress_of(session, batch) if batch is not None else None
        return BatchFigures(
            done=progress.done if progress else 0,
            total=progress.total if progress else 0,
            counts=queries.artifact_counts(session, batch_id=batch_id),
            timings=queries.stage_timings(session, batch_id=batch_id),
            tokens=repository.batch_tokens(session, batch_id=batch_id),
            progress=progress,
        )


@st.cache_data(ttl=1, show_spinner=False)
def batch_decisions(db: str, batch_id: int) -> pd.DataFrame:
    """Every decision on the batch, newest first."""
    with reading() as session:
        return approvals.recent_decisions(session, batch_id=batch_id, limit=1000)


def pace(batch: queries.BatchDetail, done: int, total: int, now: datetime) -> str:
    """'1,234 documents in 2 min: 10.3 docs/s; about 5 min left (ETA 14:05 UTC)' (no ETA while ingesting)."""
    if batch.started_at is None or done <= 0:
        return ""
    end = batch.finished_at or now
    seconds = max((end - batch.started_at).total_seconds(), 0.001)
    rate = done / seconds
    text = f"{done:,} documents in {duration(seconds)}: {rate:,.1f} docs/s"
    if batch.finished_at is None and batch.status in (BatchStatus.RUNNING, BatchStatus.RETRYING):
        if batch.ingested_at is None:
            return text + "; no ETA while ingesting (the total still grows)"
        left = max(total - done, 0) / rate
        text += (
            f"; about {duration(left)} left (ETA {when(now + timedelta(seconds=left), settings().timezone)})"
        )
    return text


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def batch_artifacts(db: str, batch_id: int, only_failed: bool, limit: int, offset: int) -> pd.DataFrame:
    with reading() as session:
        return queries.batch_artifacts(
            session, batch_id=batch_id, only_failed=only_failed, limit=limit, offset=offset
        )


@st.cache_data(ttl=1, show_spinner=False)
def workflow_progress(address: str, namespace: str, workflow_id: str) -> BatchProgress:
    return temporal.workflow_progress(temporal.gateway(), workflow_id)


# --- library --------------------------------------------------------------------------------------------


@st.cache_data(ttl=OPTIONS_TTL, show_spinner=False)
def library_options(db: str) -> tuple[list[str], list[str]]:
    """(labels, languages) for the filters."""
    with reading() as session:
        return library.library_labels(session), library.library_languages(session)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def library_count(db: str, f: library.LibraryFilter) -> tuple[int, bool]:
    """(matching documents, whether counting stopped at the cap)."""
    with reading() as session:
        return library.library_count(session, f)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def library_page(db: str, f: library.LibraryFilter, limit: int, offset: int) -> pd.DataFrame:
    with reading() as session:
        return library.library_page(session, f, limit=limit, offset=offset)


def library_csv(
    f: library.LibraryFilter, *, actor: Actor | None = None, with_text: bool = False
) -> Callable[[], str]:
    """The CSV export as a callable for st.download_button: the rows are read only when it is clicked, after
    the operations layer said the person may have them (`actor`; with the text only for READ_TEXT roles).

    Streamlit calls it on another thread, so it holds the session factory rather than reaching for caches.
    """
    maker = sessions()
    ctx = operations_context() if actor is not None else None
    f = dataclasses.replace(f, zone=settings().timezone)  # times and date filters in the configured zone

    def build() -> str:
        if actor is not None and ctx is not None:
            documents_ops.may_export(actor, ctx, with_text=with_text)
        with maker() as session:
            return library.library_csv(session, f, with_text=with_text)

    return build


# --- workers --------------------------------------------------------------------------------------------

BACKLOG_HOURS = 6  # the Workers page's backlog chart


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def backlog_history(db: str, prometheus_url: str | None, hours: int) -> tuple[pd.DataFrame, str]:
    """(time, queue, backlog) over the last `hours`, and where it came from: Prometheus's
    approximate_backlog_count when configured and answering, else the samples in the app database."""
    since = datetime.now(UTC) - timedelta(hours=hours)
    if prometheus_url:
        try:
            return metrics.backlog_from_prometheus(prometheus_url, since=since), "Prometheus"
        except metrics.PrometheusUnavailable:
            pass  # the database's samples, said so in the caption
    with reading() as session:
        return queries.backlog_samples(session, since=since), "the app database"


# --- one document ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class DocumentView:
    document: documents.Document
    exact: pd.DataFrame
    near: pd.DataFrame
    sightings: pd.DataFrame


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def document_view(db: str, artifact_id: int) -> DocumentView | None:
    """Everything the document page shows but the text (which is read only for those who may see it)."""
    with reading() as session:
        doc = documents.document(session, artifact_id=artifact_id)
        if doc is None:
            return None
        return DocumentView(
            doc,
            documents.exact_duplicates(session, doc),
            documents.near_duplicates(session, doc),
            documents.sightings(session, doc),
        )


def document_text(actor: Actor, artifact_id: int) -> str | None:
    """The text, after the operations layer's role check (Forbidden when the person may not see it)."""
    documents_ops.may_read_text(actor, operations_context(), artifact_id)
    with reading() as session:
        return documents.document_text(session, artifact_id=artifact_id)


# --- the review inbox -------------------------------------------------------------------------------------


def _decided() -> None:
    """A decision changes what the inbox, the library and the document page show: read them afresh."""
    for cached in (review_count, review_items, document_view, library_page, library_count, agreement_rows):
        cached.clear()


def review(actor: Actor, artifact_id: int, label: str, reason: str) -> reviews_ops.Reviewed:
    result = reviews_ops.review(
        actor, operations_context(), artifact_id=artifact_id, label=label, reason=reason
    )
    _decided()
    return result


def review_waiting(
    actor: Actor, f: repository.ReviewFilter, expected: int, label: str | None, reason: str
) -> reviews_ops.Reviewed:
    result = reviews_ops.review_waiting(
        actor, operations_context(), f=f, expected=expected, label=label, reason=reason
    )
    _decided()
    return result


def report(actor: Actor, artifact_id: int, note: str) -> None:
    reviews_ops.report(actor, operations_context(), artifact_id=artifact_id, note=note)
    _decided()


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def review_count(db: str, f: repository.ReviewFilter) -> int:
    with reading() as session:
        return repository.count_waiting(session, f)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def review_items(db: str, f: repository.ReviewFilter, limit: int, offset: int) -> list[repository.ReviewItem]:
    with reading() as session:
        return repository.waiting(session, f, limit=limit, offset=offset)


@st.cache_data(ttl=LIVE_TTL, show_spinner=False)
def review_overdue(db: str, hours: float) -> tuple[int, datetime | None]:
    """(documents waiting longer than `hours`, when the oldest waiting one was evaluated)."""
    with reading() as session:
        since = datetime.now(UTC) - timedelta(hours=hours)
        return repository.count_overdue(session, older_than=since), repository.oldest_waiting(session)


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def agreement_rows(db: str, weeks: int, zone: str) -> pd.DataFrame:
    with reading() as session:
        rows = repository.agreement(session, since=datetime.now(UTC) - timedelta(weeks=weeks), zone=zone)
    frame = pd.DataFrame(
        [dataclasses.astuple(r) for r in rows],
        columns=["evaluator", "source", "week", "reviewed", "overridden"],
    )
    frame["override share"] = (frame["overridden"] / frame["reviewed"]).round(3) if len(frame) else []
    return frame


# --- re-evaluation ----------------------------------------------------------------------------------------

ReevaluationScope = repository.ReevaluationScope  # for the pages


def reevaluation_preview(actor: Actor, scope: repository.ReevaluationScope) -> reevaluations_ops.Preview:
    return reevaluations_ops.preview(actor, operations_context(), scope)


def start_reevaluation(actor: Actor, scope: repository.ReevaluationScope, expected: int, reason: str) -> int:
    started = reevaluations_ops.start(actor, operations_context(), scope, expected=expected, reason=reason)
    _decided()
    return started


def cancel_reevaluation(actor: Actor, reevaluation_id: int, reason: str) -> None:
    reevaluations_ops.cancel(actor, operations_context(), reevaluation_id, reason=reason)


def recent_reevaluations(actor: Actor) -> list[reevaluations_ops.ReevaluationRow]:
    return reevaluations_ops.recent(actor, operations_context(), limit=10)


def cost(tokens: int) -> float | None:
    """What `tokens` cost at the configured price (None: no price set)."""
    price = settings().openai_price_per_million_tokens
    return None if price is None else tokens / 1e6 * price


def cost_text(tokens: int) -> str:
    """'12,345 tokens' and, with a price set, 'cost 0.02'."""
    money = cost(tokens)
    return f"{tokens:,} tokens" + (f", cost {money:,.2f}" if money is not None else "")


@st.cache_data(ttl=LIST_TTL, show_spinner=False)
def week_tokens(db: str) -> tuple[int, int] | None:
    """(pipeline, re-evaluation) tokens since Monday, when a model evaluator or a price is configured."""
    if not settings().shows_tokens:
        return None
    now = datetime.now(UTC)
    monday = (now - timedelta(days=now.weekday())).replace(hour=0, minute=0, second=0, microsecond=0)
    with reading() as session:
        return repository.tokens_since(session, since=monday)
