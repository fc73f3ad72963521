"""Workers: per task queue, pollers, backlog and its age, rates, the workers polling it, recommended replicas,
backlog over time; the Celery queue and workers when the hybrid runs; and the pipeline's rates and latencies
(Prometheus when configured, else the database)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from core.roles import Permission
from dashboard import metrics
from dashboard import task_queues as workers
from dashboard.auth import require
from dashboard.components import LIVE_SECONDS, database_required, literal, unavailable, when
from dashboard.db import reading, settings
from dashboard.temporal import gateway
from orchestration.gateway import TemporalUnavailable

st.title("Workers")
require(Permission.READ)


@st.fragment(run_every=LIVE_SECONDS)
def live() -> None:
    s = settings()
    now = datetime.now(UTC)
    st.subheader("Task queues")
    try:
        states = workers.describe_queues(gateway())
    except TemporalUnavailable as exc:
        unavailable("Task queues", exc)
        states = None
    if states is not None:
        st.dataframe(
            workers.queue_table(
                states, per_replica=s.tasks_per_replica, minimum=s.min_replicas, maximum=s.max_replicas
            ),
            hide_index=True,
            key="queues",
        )
        st.caption(
            f"Approximate backlog from Temporal (statistics lag 5-10 s). Recommended replicas: one per "
            f"{s.tasks_per_replica} pending tasks, at least {s.min_replicas}, at most {s.max_replicas}."
        )
        history: list[dict[str, object]] = st.session_state.setdefault("workers_backlog_history", [])
        workers.add_sample(history, states, now)
        st.subheader("Backlog over time")
        frame = pd.DataFrame(history)
        chart = frame.pivot_table(index="time", columns="queue", values="backlog", aggfunc="sum")
        st.line_chart(chart, y_label="pending tasks")
        st.caption(f"Sampled every {LIVE_SECONDS} s while this page is open.")

        st.subheader("Workers polling")
        table = workers.worker_table(states)
        if table.empty:
            st.info("No worker is polling any task queue.")
        else:
            st.dataframe(table, hide_index=True, key="pollers")

    if s.processing_backend == "celery":
        celery_queue()

    st.subheader("Pipeline rates and latencies")
    rates = pipeline_rates()
    if not rates.available:
        unavailable("Prometheus", rates.error)
    else:
        origin = "Prometheus" if rates.origin == "prometheus" else "the library database"
        a, b = st.columns(2)
        a.metric("Documents stored / min (15 min)", f"{rates.stored_per_min or 0:,.2f}")
        b.metric("Documents failed / min (15 min)", f"{rates.failed_per_min or 0:,.2f}")
        latency = pd.DataFrame(
            [
                {"stage": stage, "p50 (ms)": q.get(0.5), "p95 (ms)": q.get(0.95)}
                for stage, q in sorted(rates.latency_ms.items())
            ]
        )
        if not latency.empty:
            st.dataframe(latency, hide_index=True, key="latency")
        st.caption(f"From {literal(origin)}.")
    st.caption(f"Updated {when(now)}; refreshes every {LIVE_SECONDS} s.")


def celery_queue() -> None:
    """The hybrid: the chunk activities hand their documents to Celery workers through this queue."""
    s = settings()
    st.subheader("Celery queue (Temporal + Celery hybrid)")
    state = workers.describe_celery(s)
    if state.pending is None:
        unavailable("Celery broker", state.error)
        return
    st.dataframe(
        workers.celery_queue_table(
            state, per_replica=s.tasks_per_replica, minimum=s.min_replicas, maximum=s.max_replicas
        ),
        hide_index=True,
        key="celery_queue",
    )
    table = workers.celery_worker_table(state)
    if table.empty:
        st.info(
            f"No Celery worker consumes {literal(state.queue)}: start one with `loreguard celery-worker`."
        )
    else:
        st.dataframe(table, hide_index=True, key="celery_workers")
    st.caption("Pending tasks from the broker; workers answer a broadcast within 1 s.")


def pipeline_rates() -> metrics.PipelineRates:
    s = settings()
    if s.prometheus_url:
        return metrics.from_prometheus(s.prometheus_url, budget=s.prometheus_timeout_seconds)
    with database_required(), reading() as session:
        return metrics.from_database(session)


live()
