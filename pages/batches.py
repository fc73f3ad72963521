"""Batches: a filterable list, and one batch in detail (?batch=ID) with live progress while it runs."""

from __future__ import annotations

import re
from datetime import UTC, datetime, timedelta

import streamlit as st
from temporalio.service import RPCError

from core.roles import Permission
from core.vocabulary import BatchStatus, Decision, skip_reasons
from dashboard import approvals, cancel, charts, decide, queries, views
from dashboard.auth import actor, needs_sentence, require
from dashboard.components import (
    BATCHES_PAGE,
    LIVE_SECONDS,
    SOURCES_PAGE,
    database_required,
    literal,
    pager,
    table,
    unavailable,
    when,
)
from dashboard.db import operations_context, settings
from dashboard.temporal import TemporalUnavailable, temporal_ui_url
from operations.cancellation import RunningFilter, running_matching

STATUSES = (
    BatchStatus.PENDING,
    BatchStatus.RUNNING,
    BatchStatus.COMPLETED,
    BatchStatus.FAILED,
    BatchStatus.AWAITING_APPROVAL,
    BatchStatus.RETRYING,
    BatchStatus.CANCELLED,
)
LIVE = (BatchStatus.PENDING, BatchStatus.RUNNING, BatchStatus.RETRYING)
WINDOWS = {
    "any time": None,
    "last hour": timedelta(hours=1),
    "last 24 hours": timedelta(hours=24),
    "last 7 days": timedelta(days=7),
    "last 30 days": timedelta(days=30),
}
ALL = "all"
PAGE_SIZE = 50
ARTIFACT_PAGE_SIZE = 50

st.title("Batches")
require(Permission.READ)
acting = actor()
db = views.db_key()
decide.show_outcomes()

# --- the list ----------------------------------------------------------------------------------------------

PICK = "batches_pick"  # a row picked in the list, applied to the batch number on the next full run
if PICK in st.session_state:
    st.session_state["batch"] = st.session_state.pop(PICK)


with database_required():
    source_names = views.source_options(db)
source_col, status_col, window_col = st.columns(3)
ALL_SOURCES = "all sources"
by_name = {name: source_id for source_id, name in source_names.items()}
source_name = source_col.selectbox(
    "Source",
    [ALL_SOURCES, *sorted(by_name)],
    key="source",  # by name in the address: the Sources page links here with ?source=NAME
    bind="query-params",
)
source_id = by_name.get(source_name)
if source_id is not None:  # came from the source's name on the Sources page: the way back
    st.page_link(SOURCES_PAGE, label="Back to Sources", icon=":material/arrow_back:")
status = status_col.selectbox(
    "Status",
    [ALL, *STATUSES],
    key="status",  # raw values: the Overview links here with ?status=awaiting_approval
    bind="query-params",
)
window = window_col.selectbox("Created", list(WINDOWS), key="batches_window")
span = WINDOWS[window]
# Rounded to the minute so the cached list is shared between reruns.
since = None if span is None else (datetime.now(UTC) - span).replace(second=0, microsecond=0)
f = queries.BatchFilter(source_id=source_id, status=None if status == ALL else status, since=since)


@st.fragment(run_every=LIVE_SECONDS)
def batch_list(f: queries.BatchFilter) -> None:
    with database_required():
        total = views.batch_count(db, f)
        st.caption(
            f"{total:,} batch(es), newest first. Select a row to open it. Refreshes every {LIVE_SECONDS} s."
        )
        rows = st.container()
        offset = pager(total, PAGE_SIZE, key="batches_page")
        frame = views.batch_page(db, f, PAGE_SIZE, offset)

    with rows:
        event = table(
            frame,
            key="batch_rows",
            on_select="rerun",
            selection_mode="single-row",
            # narrow counts, so the table fits a 1440 px screen with the status and the error in view
            column_config={
                "error": st.column_config.TextColumn(width="large"),
                **{
                    col: st.column_config.NumberColumn(width="small")
                    for col in ("batch", "attempt", "total", "stored", "failed", "unchanged", "skipped")
                },
                "trigger": st.column_config.TextColumn(width="small"),
            },
        )
    picked = event.selection.rows if event is not None else []
    if picked and picked[0] < len(frame):
        chosen = int(frame.iloc[picked[0]]["batch"])
        if st.session_state.get("batches_picked") != chosen:  # a new click, not the same selection rerun
            st.session_state["batches_picked"] = chosen
            st.session_state[PICK] = chosen
            st.rerun()  # the whole page: the batch number below follows


batch_list(f)


def cancel_panel(f: queries.BatchFilter) -> None:
    """For operators: the running batches the filter matches (the count first), to cancel some or all."""
    rf = RunningFilter(source=f.source_id, status=f.status, since=f.since)
    with database_required():
        running = running_matching(operations_context(), rf)
    if not running:
        return
    st.markdown(f"**{len(running):,} running batch(es) match this filter.** Stop a wrong or runaway refresh:")
    names = {b.batch_id: f"{b.batch_id} · {b.source_name} · {b.status.replace('_', ' ')}" for b in running}
    picked = st.multiselect(
        "Running batches to cancel", list(names), format_func=names.__getitem__, key="cancel_pick"
    )
    selected_col, all_col = st.columns(2)
    if selected_col.button(
        f"Cancel selected ({len(picked)})…",
        disabled=not picked,
        icon=":material/cancel:",
        key="cancel_selected",
    ):
        cancel.ask(picked)
    if all_col.button(f"Cancel all {len(running):,} matching…", icon=":material/block:", key="cancel_all"):
        cancel.ask(
            [b.batch_id for b in running], matching=rf, described="every running batch matching the filter"
        )


if acting.may(Permission.CANCEL):
    cancel_panel(f)

# --- one batch ---------------------------------------------------------------------------------------------

opened = st.number_input(
    "Open a batch by its number",
    min_value=1,
    value=None,
    step=1,
    key="batch",
    bind="query-params",
    placeholder="a batch number (or select a row above)",
    help="Clear it to close the batch",
)
batch_id = int(opened or 0)


def progress(batch_id: int, opened_live: bool) -> None:
    """One measure, documents: done of total, the rate and an ETA from the library (SQL); while it runs, the
    workflow's own progress query besides. Ingesting is its own state: the total is still growing then."""
    with database_required():
        batch = views.batch_detail(db, batch_id)
        figures = views.batch_figures(db, batch_id)
    if batch is None:
        return
    if opened_live and batch.status not in LIVE:
        st.rerun()  # it just finished: show the final state everywhere on the page
    shown = figures.progress or queries.Progress(batch.status, 0, 0, 0, 0, 0)
    if shown.status == queries.INGESTING:
        st.progress(
            0.0, text=f"ingesting · {shown.total:,} documents gathered so far (the total still grows)"
        )
    else:
        st.progress(shown.share, text=f"{shown.done:,} of {shown.total:,} documents done · {shown.status}")
    pace = views.pace(batch, figures.done, figures.total, datetime.now(UTC))
    if pace:
        st.caption(pace)
    stored, failed, unchanged, skipped, total, attempt = st.columns(6)
    stored.metric("Stored", f"{figures.counts.get('stored', 0):,}")
    failed.metric("Failed", f"{figures.counts.get('failed', 0):,}")
    unchanged.metric(
        "Unchanged",
        f"{figures.counts.get('unchanged', 0) + batch.recognised:,}",
        help="Already stored by an earlier batch of this source (same content): not stored twice, not "
        "evaluated again; folder files as the last successful refresh saw them are not even read",
    )
    skipped.metric(
        "Skipped",
        f"{batch.skipped:,}",
        help="Not gathered: a folder's files of a type the pipeline does not read, and documents past the "
        "per-batch limit (LOREGUARD_MAX_DOCUMENTS_PER_BATCH)",
    )
    total.metric("Documents", f"{figures.total:,}")
    attempt.metric("Attempt", batch.attempt)
    if batch.unchanged_at_source:
        st.info(
            "Unchanged at source: the server answered 304 Not Modified to the validators of the last successful "
            "refresh, so nothing was downloaded or gathered.",
            icon=":material/check_circle:",
        )
    if batch.recognised:
        st.caption(
            f"{batch.recognised:,} file(s) of the folder were not read: their size, modification time and inode "
            "were as the last successful refresh saw them."
        )
    if figures.tokens:
        st.caption(f"Model evaluator: {views.cost_text(figures.tokens)} (as its API reported them).")
    for sentence in queries.skipped_sentences(skip_reasons(batch.skipped, batch.skip_reasons)):
        st.caption(literal(sentence))
    if batch.status in LIVE and batch.workflow_id:
        try:
            live = views.workflow_progress(*views.temporal_key(), batch.workflow_id)
        except TemporalUnavailable as exc:
            unavailable("Live progress from the workflow", exc)
        except RPCError as exc:
            st.caption(f"Live progress from the workflow unavailable (no worker answered: {literal(exc)}).")
        else:
            st.caption(
                f"Workflow: {literal(live.state)}, {live.chunks_done} of {live.chunks_total} chunk(s) done, "
                f"attempt {live.attempt}."
            )


def detail(batch_id: int) -> None:
    with database_required():
        batch = views.batch_detail(db, batch_id)
    if batch is None:
        st.warning(f"There is no batch {batch_id}.")
        return
    s = settings()
    st.subheader(f"Batch {batch.id}")
    st.markdown(
        f"Source **{literal(batch.source_name)}** · {literal(batch.trigger)}"
        f"{' (full refresh)' if batch.full else ''} · "
        f"{literal(queries.shown_status(batch.status, batch.ingested_at, batch.decision))} · "
        f"created {when(batch.created_at)}"
        f" · started {when(batch.started_at)} · finished {when(batch.finished_at)}"
    )
    st.page_link(
        BATCHES_PAGE,
        label=f"All batches of {literal(batch.source_name)}",
        query_params={"source": batch.source_name},
        icon=":material/filter_list:",
    )
    if batch.workflow_id:
        st.link_button(
            "Workflow in the Temporal UI",
            temporal_ui_url(s.temporal_ui_port, s.temporal_namespace, batch.workflow_id),
            icon=":material/open_in_new:",
        )
    live = batch.status in LIVE
    # The same rate as the list above, so the two show the same figures while it runs.
    st.fragment(run_every=LIVE_SECONDS if live else None)(progress)(batch.id, live)

    cancelled_by = batch.decided_by if batch.decision == Decision.CANCELLED else None
    if batch.status == BatchStatus.CANCELLED:
        what = batch.compensation or ""
        if (
            cancelled_by
        ):  # who and why once; the outcome without the workflow's own "cancelled (by ...)" prefix
            kept = re.search(r"\d+ stored document\(s\) kept.*$", what)
            what = kept.group(0) if kept else what
            text = f"Cancelled by {cancelled_by} ({when(batch.decided_at)}): {batch.decision_reason}. {what}."
        else:
            text = f"{what[:1].upper()}{what[1:]}."
        st.info(literal(text), icon=":material/cancel:")
    elif cancelled_by:
        st.info(
            literal(
                f"Cancellation requested by {cancelled_by} ({when(batch.decided_at)}): {batch.decision_reason}. "
                "Waiting for its activities to stop at their next heartbeat."
            ),
            icon=":material/hourglass_top:",
        )
    elif (
        batch.status in (*LIVE, BatchStatus.AWAITING_APPROVAL)
        and acting.may(Permission.CANCEL)
        and st.button("Cancel batch…", icon=":material/cancel:", key="batch_cancel")
    ):
        cancel.ask([batch.id])
    if batch.error_type or batch.error_message:
        st.markdown("**Error**")
        text = f"{batch.error_type}: {batch.error_message or ''}" if batch.error_type else batch.error_message
        st.code(text or "", language=None, wrap_lines=True)
    if batch.compensation and batch.status != BatchStatus.CANCELLED:
        st.text(f"Compensation: {batch.compensation}")
    if batch.status == BatchStatus.AWAITING_APPROVAL:
        st.markdown(
            f"**Waiting for an operator's decision** until {when(batch.decision_deadline)} "
            f"({approvals.time_left(batch.decision_deadline)}); failed at "
            f"{literal(batch.failed_stage or 'an unknown stage')}, attempt {batch.attempt}."
        )
        if acting.may(Permission.DECIDE):
            approve_col, reject_col = st.columns(2)
            if approve_col.button(
                "Approve retry", type="primary", icon=":material/replay:", key="batch_approve"
            ):
                decide.ask([batch.id], approve=True)
            if reject_col.button("Reject…", icon=":material/cancel:", key="batch_reject"):
                decide.ask([batch.id], approve=False)
            decide.confirm_pending(acting)
        else:
            st.caption(literal(needs_sentence(Permission.DECIDE)))
    with database_required():
        decisions = views.batch_decisions(db, batch.id)
    if not decisions.empty:
        st.markdown("**Decisions**")
        table(decisions.drop(columns=["batch", "source"]), key="batch_decisions")

    with database_required():
        figures = views.batch_figures(db, batch.id)
    st.markdown("**Stage timings**")
    if figures.timings.empty:
        st.caption("No stage has timed a document yet.")
    else:
        st.plotly_chart(charts.stage_timings_figure(figures.timings), key="stage_timings")

    st.markdown("**Documents**")
    only_failed = st.toggle("Only failed documents", key="only_failed")
    count = figures.counts.get("failed", 0) if only_failed else figures.total
    rows = st.container()
    offset = pager(count, ARTIFACT_PAGE_SIZE, key="artifacts_page")
    with database_required():
        artifacts = views.batch_artifacts(db, batch.id, only_failed, ARTIFACT_PAGE_SIZE, offset)
    with rows:
        table(
            artifacts,
            key="artifact_rows",
            column_config={
                "document": st.column_config.LinkColumn(display_text=queries.DOCUMENT_LINK, width="small"),
                "seq": st.column_config.NumberColumn(width="small"),
                "error": st.column_config.TextColumn(width="large"),
            },
        )
        st.caption("A document's number opens its page: its text, evaluation, duplicates and full error.")


if batch_id:
    detail(batch_id)
if acting.may(Permission.CANCEL):
    cancel.confirm_pending(acting)  # once per run: the list's and the detail's buttons both ask here
