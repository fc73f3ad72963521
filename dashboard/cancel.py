"""Cancelling running batches from the Batches page: ask (one batch, a selection, or every running batch matching
the filter), confirm in a dialog with a reason, send through operations.cancellation (which checks the person's
role), then show each batch's outcome once (decide.show_outcomes)."""

from __future__ import annotations

from collections.abc import Sequence

import streamlit as st

from dashboard.components import literal
from dashboard.db import operations_context
from dashboard.decide import OUTCOMES
from operations import Actor, Refused
from operations.cancellation import RunningFilter, cancel_many, cancel_matching

PENDING = "cancel_pending"  # (batch ids, filter or None, what they are) whose confirmation dialog is open


def ask(batch_ids: Sequence[int], *, matching: RunningFilter | None = None, described: str = "") -> None:
    """Open the confirmation for these batches (with `matching`: every running batch the filter matches, of
    which `batch_ids` are the ones shown)."""
    st.session_state[PENDING] = (list(batch_ids), matching, described)


def confirm_pending(acting: Actor) -> None:
    """The confirmation dialog, when a cancellation was asked for (call once per page run, after the buttons)."""
    pending = st.session_state.get(PENDING)
    if pending is not None:
        _confirm(acting, *pending)


@st.dialog("Cancel running batches", on_dismiss=lambda: st.session_state.pop(PENDING, None))
def _confirm(acting: Actor, batch_ids: list[int], matching: RunningFilter | None, described: str) -> None:
    count = len(batch_ids)
    listed = ", ".join(str(b) for b in batch_ids[:20]) + (" …" if count > 20 else "")
    what = f"{count} running batch(es)" + (f": {described}" if described else "")
    st.markdown(f"Cancel **{literal(what)}** ({listed})?")
    st.caption(
        "Each batch stops at its activities' next heartbeat; the documents it stored are kept, the rest are "
        "not processed. It ends cancelled."
    )
    reason = st.text_area("Reason (required)", key="cancel_reason", max_chars=2000)
    st.caption(f"Cancelled as {literal(acting.name)}; recorded with each batch and in the audit log.")
    yes, no = st.columns(2)
    label = "Cancel the batch" if count == 1 else f"Cancel {count} batches"
    confirmed = yes.button(label, type="primary", key="cancel_confirmed")
    if no.button("Keep them running", key="cancel_dismissed"):
        st.session_state.pop(PENDING, None)
        st.rerun()
    if not confirmed:
        return
    if not reason.strip():
        st.error("A cancellation needs a reason.", icon=":material/block:")
        return
    with st.spinner("Sending the cancellation..."):
        try:
            if matching is not None:
                outcomes = cancel_matching(
                    acting, operations_context(), matching, reason=reason, expected=count
                )
            else:
                outcomes = cancel_many(acting, operations_context(), batch_ids, reason=reason)
        except Refused as exc:
            st.error(literal(exc.message), icon=":material/block:")
            return
    st.session_state.pop(PENDING, None)
    st.session_state.pop("cancel_reason", None)
    st.session_state[OUTCOMES] = outcomes
    st.cache_data.clear()  # every list and count shows the cancellation at once
    st.rerun()
