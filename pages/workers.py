"""Workers: one recommendation per task queue (backlog and its age); per queue and type its pollers, backlog
and rates; the workers polling; backlog over time (Prometheus, else the app database's samples); the Celery
queue and workers when the hybrid runs; and the pipeline's rates and latencies (Prometheus when configured,
else the database)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pandas as pd
import streamlit as st

from core.roles import Permission
from dashboard import charts, metrics, views
from dashboard import task_queues as workers
from dashboard.auth import require
from dashboard.components import LIVE_SECONDS, database_required, literal, table, unavailable, when, zone_name
from dashboard.db import reading, settings
from dashboard.formatting import duration
from dashboard.temporal import TemporalUnavailable, gateway

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
        st.subheader("Recommendation per queue")
        table(
            workers.queue_advice(
                states,
                per_replica=s.tasks_per_replica,
                minimum=s.min_replicas,
                maximum=s.max_replicas,
                age_target=s.backlog_age_target_seconds,
            ),
            key="advice",
            column_config={"advice": st.column_config.TextColumn(width="large")},
        )
        st.caption(
            f"Replicas by KEDA's rule on the task type it counts: one per {s.tasks_per_replica} pending tasks, "
            f"at least {s.min_replicas}, at most {s.max_replicas} (deploy/k8s ScaledObjects). The advice also "
            f"flags a queue whose oldest task waited over {duration(s.backlog_age_target_seconds)}."
        )
        table(workers.queue_table(states), key="queues")
        st.caption("Approximate backlog from Temporal (statistics lag 5-10 s).")

        st.subheader("Workers polling")
        pollers = workers.worker_table(states)
        if pollers.empty:
            st.info("No worker is polling any task queue.")
        else:
            table(pollers, key="pollers")

    st.subheader(f"Backlog over the last {views.BACKLOG_HOURS} h")
    with database_required():
        history, origin = views.backlog_history(views.db_key(), s.prometheus_url, views.BACKLOG_HOURS)
    if history.empty:
        st.caption(
            "No backlog recorded yet: the worker serving the scheduler queue samples it every "
            f"{duration(s.backlog_sample_seconds)}."
        )
    else:
        st.plotly_chart(
            charts.backlog_figure(
                history, zone=zone_name(), since=now - timedelta(hours=views.BACKLOG_HOURS), until=now
            ),
            key="backlog_chart",
        )
        st.caption(
            f"From {origin}"
            + (
                f" (sampled every {duration(s.backlog_sample_seconds)} by the worker serving the scheduler queue)."
                if origin != "Prometheus"
                else "."
            )
        )

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
            table(latency, key="latency")
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
