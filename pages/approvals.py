"""Approvals: failed batches awaiting an operator's decision (approve a retry, or reject with a reason)."""

from __future__ import annotations

import streamlit as st

from core.roles import Permission
from dashboard import approvals
from dashboard.auth import actor, needs_sentence, require
from dashboard.components import BATCHES_PAGE, database_required, literal, pager, when
from dashboard.db import operations_context, reading
from operations.batches import decide_many

FAILED_PAGE_SIZE = 20
PENDING = "approvals_pending"  # (batch ids, approve) whose confirmation dialog is open
OUTCOMES = "approvals_outcomes"  # outcomes of the last decision, shown once after its rerun

st.title("Approvals")
require(Permission.READ)
acting = actor()
deciding = acting.may(Permission.DECIDE)

for outcome in st.session_state.pop(OUTCOMES, []):
    if outcome.accepted:
        st.success(literal(outcome.message), icon=":material/check_circle:")
    else:
        st.error(literal(outcome.message), icon=":material/block:")


@st.dialog("Confirm decision", on_dismiss=lambda: st.session_state.pop(PENDING, None))
def confirm(batch_ids: list[int], approve: bool) -> None:
    listed = ", ".join(str(b) for b in batch_ids)
    if approve:
        st.markdown(f"Approve a retry of batch(es) **{listed}**?")
        st.caption("Only what failed is tried again, as the next attempt.")
    else:
        st.markdown(f"Reject batch(es) **{listed}**?")
        st.caption("A rejected batch ends failed with your reason.")
    reason = st.text_area(
        "Reason" + ("" if approve else " (required)"), key="decision_reason", max_chars=2000
    )
    st.caption(f"Decided as {literal(acting.name)}; the decision is recorded in the audit log.")
    yes, no = st.columns(2)
    confirmed = yes.button("Approve retry" if approve else "Reject", type="primary", key="decision_confirmed")
    if no.button("Cancel", key="decision_cancelled"):
        st.session_state.pop(PENDING, None)
        st.rerun()
    if not confirmed:
        return
    if not approve and not reason.strip():
        st.error("A rejection needs a reason.", icon=":material/block:")
        return
    with st.spinner("Sending the decision..."):
        outcomes = decide_many(acting, operations_context(), batch_ids, approve=approve, reason=reason)
    st.session_state.pop(PENDING, None)
    st.session_state.pop("decision_reason", None)
    st.session_state[OUTCOMES] = outcomes
    st.rerun()


with database_required(), reading() as session:
    waiting = approvals.waiting(session)

if not waiting:
    st.info("No failed batch is waiting for a decision.", icon=":material/task_alt:")
else:
    st.caption(
        f"{len(waiting)} failed batch(es) waiting, nearest timeout first. "
        "A batch not decided in time counts as rejected by timeout."
    )
    st.dataframe(approvals.waiting_frame(waiting), hide_index=True, key="approvals_table")

    by_id = {w.id: w for w in waiting}

    if deciding:
        st.subheader("Decide on several batches")
        selected = st.multiselect(
            "Selected batches",
            list(by_id),
            format_func=lambda b: f"{b} · {by_id[b].source_name}",
            key="bulk_batches",
        )
        bulk_approve, bulk_reject = st.columns(2)
        if bulk_approve.button("Approve selected", key="bulk_approve", disabled=not selected):
            st.session_state[PENDING] = (list(selected), True)
        if bulk_reject.button("Reject selected…", key="bulk_reject", disabled=not selected):
            st.session_state[PENDING] = (list(selected), False)

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
        table = st.container()
        offset = pager(failed_total, FAILED_PAGE_SIZE, key=f"failed_page_{chosen.id}")
        with database_required(), reading() as session:
            failed = approvals.failed_artifacts(
                session, batch_id=chosen.id, limit=FAILED_PAGE_SIZE, offset=offset
            )
        table.dataframe(failed, hide_index=True, key="failed_artifacts")
    else:
        st.caption("No failed documents recorded (the batch failed before or during ingest).")
    if not deciding:
        st.caption(literal(needs_sentence(Permission.DECIDE)))
    else:
        approve_col, reject_col = st.columns(2)
        if approve_col.button("Approve retry", type="primary", icon=":material/replay:", key="approve"):
            st.session_state[PENDING] = ([chosen.id], True)
        if reject_col.button("Reject…", icon=":material/cancel:", key="reject"):
            st.session_state[PENDING] = ([chosen.id], False)

pending = st.session_state.get(PENDING)
if pending is not None and deciding:
    confirm(*pending)

st.subheader("Recently decided")
with database_required(), reading() as session:
    decided = approvals.recent_decisions(session)
if decided.empty:
    st.caption("No decisions yet.")
else:
    st.dataframe(
        decided,
        hide_index=True,
        key="recent_decisions",
        column_config={"decided": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm:ss")},
    )
    st.caption("Times are UTC. A timeout is recorded as timed_out by system.")
