"""Overview: live workflow counts, throughput, SLA breaches, batches awaiting approval and queue backlog."""

from __future__ import annotations

import streamlit as st

from core.roles import Permission
from dashboard import charts, views
from dashboard.auth import require
from dashboard.components import (
    APPROVALS_PAGE,
    BATCHES_PAGE,
    LIBRARY_PAGE,
    LIVE_SECONDS,
    SLA_PAGE,
    database_required,
    table,
    unavailable,
    when,
    zone_name,
)
from dashboard.db import settings
from dashboard.temporal import TemporalUnavailable, task_queue_ui_url, temporal_ui_url

st.title("Overview")
require(Permission.READ)


@st.fragment(run_every=LIVE_SECONDS)
def live() -> None:
    s = settings()
    with database_required():
        figures = views.overview_figures(views.db_key())

    hour, day, sla, approval = st.columns(4)
    with hour:
        st.metric("Documents stored, last hour", f"{figures.stored_last_hour:,}")
        st.page_link(LIBRARY_PAGE, label="Library", icon=":material/library_books:")
    with day:
        st.metric("Documents stored, last 24 h", f"{figures.stored_last_day:,}")
        st.page_link(LIBRARY_PAGE, label="Library", icon=":material/library_books:")
    with sla:
        st.metric("Open SLA breaches", figures.open_sla_breaches)
        st.page_link(SLA_PAGE, label="SLA", icon=":material/timer:")
    with approval:
        st.metric("Failed batches awaiting approval", figures.awaiting_approval)
        st.page_link(APPROVALS_PAGE, label="Approvals", icon=":material/approval:")
    with database_required():
        week = views.week_tokens(views.db_key())
    if week is not None:
        pipeline, again = week
        st.caption(
            f"Model evaluator this week (since Monday, UTC): {views.cost_text(pipeline + again)} "
            f"({pipeline:,} in batches, {again:,} in re-evaluations)."
        )

    ended = figures.ended_last_day
    for column, status, label in zip(
        st.columns(3),
        ("completed", "failed", "cancelled"),
        ("Batches completed, last 24 h", "Batches failed, last 24 h", "Batches cancelled, last 24 h"),
        strict=True,
    ):
        with column:
            st.metric(label, f"{ended.get(status, 0):,}")
            st.page_link(
                BATCHES_PAGE, label=f"{status.capitalize()} batches", query_params={"status": status}
            )

    throughput, workflows = st.columns([3, 2])
    with throughput:
        st.subheader("Throughput, last 24 h")
        st.plotly_chart(charts.throughput_figure(figures.throughput, zone=zone_name()), key="throughput")
        st.caption(f"Documents stored per hour ({zone_name()}), counted in the library database.")
    with workflows:
        st.subheader("Workflows by status")
        try:
            counts = views.workflow_counts(*views.temporal_key())
        except TemporalUnavailable as exc:
            unavailable("Workflow counts", exc)
        else:
            st.plotly_chart(charts.workflow_status_figure(counts), key="workflow_status")
            st.caption(
                "Batch workflows and their chunk children, from Temporal visibility "
                "(closed ones are kept for the namespace's retention)."
            )
        st.page_link(BATCHES_PAGE, label="Batches", icon=":material/stacks:")
        st.page_link(
            temporal_ui_url(s.temporal_ui_port, s.temporal_namespace),
            label="Workflows in the Temporal UI",
            icon=":material/open_in_new:",
        )

    st.subheader("Task-queue backlog")
    try:
        backlog = views.queue_backlog(*views.temporal_key())
    except TemporalUnavailable as exc:
        unavailable("Task-queue backlog", exc)
    else:
        backlog["Temporal UI"] = [
            task_queue_ui_url(s.temporal_ui_port, s.temporal_namespace, q) for q in backlog["queue"]
        ]
        table(
            backlog,
            key="overview_backlog",
            column_config={"Temporal UI": st.column_config.LinkColumn(display_text="open")},
        )
        st.caption("Approximate backlog per task queue from Temporal (its statistics lag by 5-10 s).")
    st.caption(f"Updated {when(figures.as_of)}; refreshes every {LIVE_SECONDS} s.")


live()
