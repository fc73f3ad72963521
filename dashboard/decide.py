"""Deciding on failed batches from any page (Approvals, a batch's own page): ask, confirm in a dialog, send
through operations.batches (which checks the person's role), then show each batch's outcome once."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.components import literal
from dashboard.db import operations_context
from operations import Actor
from operations.batches import Outcome, decide_many

PENDING = "decision_pending"  # (batch ids, approve, what they are) whose confirmation dialog is open
OUTCOMES = "decision_outcomes"  # outcomes of the last decision, shown once after its rerun


def ask(batch_ids: Sequence[int], *, approve: bool, described: str = "") -> None:
    """Open the confirmation for these batches on this run (`described`: 'every batch of advisories ...')."""
    st.session_state[PENDING] = (list(batch_ids), approve, described)


def show_outcomes() -> None:
    outcome: Outcome
    for outcome in st.session_state.pop(OUTCOMES, []):
        if outcome.accepted:
            st.success(literal(outcome.message), icon=":material/check_circle:")
        else:
            st.error(literal(outcome.message), icon=":material/block:")


def confirm_pending(acting: Actor) -> None:
    """The confirmation dialog, when a decision was asked for (call once per page run, after the buttons)."""
    pending = st.session_state.get(PENDING)
    if pending is not None:
        _confirm(acting, *pending)


@st.dialog("Confirm decision", on_dismiss=lambda: st.session_state.pop(PENDING, None))
def _confirm(acting: Actor, batch_ids: list[int], approve: bool, described: str) -> None:
    count = len(batch_ids)
    listed = ", ".join(str(b) for b in batch_ids[:20]) + (" …" if count > 20 else "")
    what = f"{count} batch(es)" + (f": {described}" if described else "")
    if approve:
        st.markdown(f"Approve a retry of **{literal(what)}** ({listed})?")
        st.caption("Only what failed is tried again, as the next attempt.")
    else:
        st.markdown(f"Reject **{literal(what)}** ({listed})?")
        st.caption("A rejected batch ends failed with your reason.")
    reason = st.text_area(
        "Reason" + ("" if approve else " (required)"), key="decision_reason", max_chars=2000
    )
    st.caption(f"Decided as {literal(acting.name)}; the decision is recorded in the audit log.")
    yes, no = st.columns(2)
    if count == 1:
        label = "Approve retry" if approve else "Reject"
    else:
        label = f"Approve {count} retries" if approve else f"Reject {count} batches"
    confirmed = yes.button(label, type="primary", key="decision_confirmed")
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
    st.cache_data.clear()  # a rare action: every list and count shows the decision at once, not in 5 s
    st.rerun()
