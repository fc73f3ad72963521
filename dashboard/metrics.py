"""Pipeline rates and latency percentiles: from Prometheus when LOREGUARD_PROMETHEUS_URL is set, else the app DB.

An unreachable or slow Prometheus costs a page at most `budget` seconds (1 s by default, all queries together):
the client never retries (`Retry(total=0)`; its default retries cost 6 s per call against a dead server), each
query gets what is left of the budget, and the first failure ends the attempt with `available=False`.
"""

from __future__ import annotations

import math
import time
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta
from typing import Any

import pandas as pd
from sqlalchemy import func, select
from sqlalchemy.orm import Session

from core.vocabulary import TIMED_STAGES, ArtifactStatus
from data.models import Artifact, utcnow

STAGES = TIMED_STAGES  # the stages whose times an artifact records
QUANTILES = (0.5, 0.95)
DB_SAMPLE = 5000  # latest documents whose stage times the database percentiles use


@dataclass
class PipelineRates:
    """Documents per minute (processed = stored, failed) and per-stage latency percentiles in ms."""

    origin: str  # "prometheus" | "database"
    available: bool = True
    error: str | None = None
    stored_per_min: float | None = None
    failed_per_min: float | None = None
    latency_ms: dict[str, dict[float, float | None]] = field(default_factory=dict)


def _prometheus_queries(window: str) -> dict[str, str]:
    queries = {
        "stored": f'sum(rate(loreguard_documents_processed_total{{stage="evaluate"}}[{window}])) * 60',
        "failed": f"sum(rate(loreguard_documents_failed_total[{window}])) * 60",
    }
    for q in QUANTILES:
        queries[f"p{q}"] = (
            f"histogram_quantile({q}, sum by (le, stage) "
            f"(rate(loreguard_stage_latency_milliseconds_bucket[{window}])))"
        )
    return queries


def _client(url: str, timeout: float) -> Any:
    """A Prometheus API client that never retries. Imported here: the client and `requests` cost a dashboard
    without Prometheus ~5 MB."""
    from prometheus_api_client import PrometheusConnect
    from urllib3.util.retry import Retry

    return PrometheusConnect(url=url, retry=Retry(total=0), timeout=timeout, disable_ssl=True)


def from_prometheus(url: str, *, window: str = "15m", budget: float = 1.0) -> PipelineRates:
    """Rates and percentiles by PromQL; `available=False` with the reason when Prometheus does not answer."""
    rates = PipelineRates(origin="prometheus")
    deadline = time.monotonic() + budget
    try:
        for name, query in _prometheus_queries(window).items():
            left = deadline - time.monotonic()
            if left <= 0.05:
                raise TimeoutError(f"no answer within {budget:g} s")
            api = _client(url, left)
            rows = api.custom_query(query)
            if name in ("stored", "failed"):
                value = float(rows[0]["value"][1]) if rows else 0.0
                setattr(rates, f"{name}_per_min", round(value, 2) if value == value else 0.0)
            else:
                q = float(name[1:])
                for row in rows:
                    stage = row["metric"].get("stage", "")
                    v = float(row["value"][1])
                    rates.latency_ms.setdefault(stage, {})[q] = None if v != v else round(v, 1)
    except Exception as exc:  # connection refused, timeout, HTTP error, bad answer: all "unavailable"
        return PipelineRates(
            origin="prometheus", available=False, error=f"Prometheus at {url}: {_reason(exc)}"
        )
    return rates


class PrometheusUnavailable(RuntimeError):
    """Prometheus did not answer a query in time (or answered nonsense)."""


def backlog_from_prometheus(url: str, *, since: datetime, budget: float = 1.0) -> pd.DataFrame:
    """(time, queue, backlog) from the Temporal server's approximate_backlog_count (queue names as LoreGuard
    writes them: the server reports loreguard_processing for loreguard-processing)."""
    end = datetime.now(UTC)
    step = max(15, int((end - since).total_seconds() / 240))
    try:
        api = _client(url, budget)
        series = api.custom_query_range(
            "sum by (taskqueue) (approximate_backlog_count)", start_time=since, end_time=end, step=str(step)
        )
    except Exception as exc:
        raise PrometheusUnavailable(f"Prometheus at {url}: {_reason(exc)}") from exc
    rows = [
        (
            datetime.fromtimestamp(float(t), UTC),
            str(one["metric"].get("taskqueue", "")).replace("_", "-"),
            int(float(v)),
        )
        for one in series
        for t, v in one.get("values", [])
    ]
    return pd.DataFrame(rows, columns=["time", "queue", "backlog"])


def from_database(session: Session, *, window: timedelta = timedelta(minutes=15)) -> PipelineRates:
    """The same figures from the library database (stored/failed in the window, percentiles of recent docs)."""
    since = utcnow() - window
    minutes = window.total_seconds() / 60
    stored = (
        session.scalar(select(func.count()).select_from(Artifact).where(Artifact.stored_at >= since)) or 0
    )
    failed = (
        session.scalar(
            select(func.count())
            .select_from(Artifact)
            .where(Artifact.status == ArtifactStatus.FAILED, Artifact.ingested_at >= since)
        )
        or 0
    )
    rates = PipelineRates(
        origin="database",
        stored_per_min=round(stored / minutes, 2),
        failed_per_min=round(failed / minutes, 2),
    )
    columns = [getattr(Artifact, f"{stage}_ms") for stage in STAGES]
    recent = session.execute(
        select(*columns)
        .where(Artifact.processed_at.is_not(None))
        .order_by(Artifact.id.desc())
        .limit(DB_SAMPLE)
    ).all()
    for i, stage in enumerate(STAGES):
        values = sorted(float(r[i]) for r in recent if r[i] is not None)
        if values:
            rates.latency_ms[stage] = {q: round(percentile(values, q), 1) for q in QUANTILES}
    return rates


def percentile(sorted_values: list[float], q: float) -> float:
    """Nearest-rank percentile of an ascending list."""
    index = min(len(sorted_values) - 1, max(0, math.ceil(q * len(sorted_values)) - 1))
    return sorted_values[index]


def _reason(exc: BaseException) -> str:
    text = str(exc) or type(exc).__name__
    if "Connection refused" in text or "NewConnectionError" in text:
        return "connection refused"
    if "timed out" in text.lower() or isinstance(exc, TimeoutError):
        return "no answer within the time limit"
    return text.splitlines()[0][:200]
