"""Approvals: failed batches awaiting an operator's decision (approve a retry, or reject with a reason), one at a
time, a selection, or every batch of a source; and every decision taken. The lists refresh themselves."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from core.roles import Permission
from dashboard import approvals, decide
from dashboard.auth import actor, needs_sentence, require
from dashboard.components import (
    BATCHES_PAGE,
    LIVE_SECONDS,
    database_required,
    literal,
    pager,
    table,
    when,
    zone_name,
)
from dashboard.db import reading

FAILED_PAGE_SIZE = 20
ALL_SOURCES = 0

st.title("Approvals")
require(Permission.READ)
acting = actor()
deciding = acting.may(Permission.DECIDE)
decide.show_outcomes()


@st.fragment(run_every=LIVE_SECONDS)
def waiting_batches() -> None:
    with database_required(), reading() as session:
        waiting = approvals.waiting(session)
    if not waiting:
        st.info("No failed batch is waiting for a decision.", icon=":material/task_alt:")
        st.caption(f"Checked {when(datetime.now(UTC))}; refreshes every {LIVE_SECONDS} s.")
        return
    st.caption(
        f"{len(waiting)} failed batch(es) waiting, nearest timeout first. A batch not decided in time counts "
        f"as rejected by timeout. Refreshes every {LIVE_SECONDS} s."
    )
    table(
        approvals.waiting_frame(waiting),
        key="approvals_table",
        column_config={
            "batch": st.column_config.NumberColumn(width="small"),
            "time left": st.column_config.TextColumn(width="small"),
            "error": st.column_config.TextColumn(width="large"),
            **{c: st.column_config.NumberColumn(width="small") for c in ("failed", "documents", "attempt")},
        },
    )
    by_id = {w.id: w for w in waiting}
    if deciding:
        by_filter(waiting)
        st.subheader("Decide on several batches")
        selected = st.multiselect(
            "Selected batches",
            list(by_id),
            format_func=lambda b: f"{b} · {by_id[b].source_name}",
            key="bulk_batches",
        )
        bulk_approve, bulk_reject = st.columns(2)
        if bulk_approve.button("Approve selected", key="bulk_approve", disabled=not selected):
            decide.ask(selected, approve=True)
            st.rerun()
        if bulk_reject.button("Reject selected…", key="bulk_reject", disabled=not selected):
            decide.ask(selected, approve=False)
            st.rerun()
    one_batch(by_id)


def by_filter(waiting: list[approvals.BatchRow]) -> None:
    """'Every batch of source X awaiting approval', with the count shown before anything is confirmed."""
    st.subheader("Decide on a filter")
    sources = {w.source_id: w.source_name for w in waiting}
    source_id = st.selectbox(
        "Every batch awaiting approval of",
        [ALL_SOURCES, *sorted(sources, key=lambda i: sources[i])],
        format_func=lambda i: "all sources" if i == ALL_SOURCES else sources[i],
        key="filter_source",
    )
    with database_required(), reading() as session:
        ids = approvals.waiting_ids(session, source_id=None if source_id == ALL_SOURCES else source_id)
    described = (
        "every batch awaiting approval"
        if source_id == ALL_SOURCES
        else f"every batch of source {sources.get(source_id, '?')} awaiting approval"
    )
    st.caption(f"{len(ids)} batch(es) match: {literal(described)}.")
    approve_all, reject_all = st.columns(2)
    if approve_all.button(f"Approve all {len(ids)}…", key="filter_approve", disabled=not ids):
        decide.ask(ids, approve=True, described=described)
        st.rerun()
    if reject_all.button(f"Reject all {len(ids)}…", key="filter_reject", disabled=not ids):
        decide.ask(ids, approve=False, described=described)
        st.rerun()


def one_batch(by_id: dict[int, approvals.BatchRow]) -> None:
    st.subheader("One batch")
    chosen_id = st.selectbox(
        "Batch", list(by_id), format_func=lambda b: f"{b} · {by_id[b].source_name}", key="approval_batch"
    )
    chosen = by_id[chosen_id]
    st.markdown(f"**Batch {chosen.id}** of source **{literal(chosen.source_name)}**")
    st.caption(
        f"Attempt {chosen.attempt} failed at {literal(chosen.failed_stage or 'unknown stage')} · "
        f"{chosen.total:,} document(s), {chosen.stored:,} stored, {chosen.failed:,} failed · "
        f"decide by {when(chosen.decision_deadline)} ({approvals.time_left(chosen.decision_deadline)})"
    )
    st.text(f"Error: {chosen.error_type or 'unknown'}: {chosen.error_message or ''}")
    st.text(f"Compensation: {chosen.compensation or 'none recorded'}")
    st.page_link(BATCHES_PAGE, label=f"Open batch {chosen.id}", query_params={"batch": str(chosen.id)})
    with database_required(), reading() as session:
        failed_total = approvals.failed_artifact_count(session, batch_id=chosen.id)
    if failed_total:
        st.caption(f"{failed_total:,} failed document(s) with their reasons")
        rows = st.container()
        offset = pager(failed_total, FAILED_PAGE_SIZE, key=f"failed_page_{chosen.id}")
        with database_required(), reading() as session:
            failed = approvals.failed_artifacts(
                session, batch_id=chosen.id, limit=FAILED_PAGE_SIZE, offset=offset
            )
        with rows:
            table(failed, key="failed_artifacts")
    else:
        st.caption("No failed documents recorded (the batch failed before or during ingest).")
    if not deciding:
        st.caption(literal(needs_sentence(Permission.DECIDE)))
        return
    approve_col, reject_col = st.columns(2)
    if approve_col.button("Approve retry", type="primary", icon=":material/replay:", key="approve"):
        decide.ask([chosen.id], approve=True)
        st.rerun()
    if reject_col.button("Reject…", icon=":material/cancel:", key="reject"):
        decide.ask([chosen.id], approve=False)
        st.rerun()


@st.fragment(run_every=LIVE_SECONDS)
def decision_history() -> None:
    st.subheader("Decisions")
    with database_required(), reading() as session:
        decided = approvals.recent_decisions(session, limit=50)
    if decided.empty:
        st.caption("No decisions yet.")
        return
    table(decided, key="recent_decisions")
    st.caption(
        f"Every decision, newest first (the last 50; a batch's page lists all of its own). Times are in "
        f"{zone_name()}. A timeout is recorded as timed out by system."
    )


waiting_batches()
if deciding:
    decide.confirm_pending(acting)
decision_history()
