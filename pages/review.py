"""Review: documents whose verdict needs a person (the evaluator was in doubt or unsure, or a reader reported
it). Decide one at a time with the text beside it (keys: a agree, 1 relevant, 0 irrelevant, n next), or every
document waiting on a filter with the count shown first; and how often people override each evaluator."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import plotly.express as px
import streamlit as st

from core.roles import Permission
from dashboard import views
from dashboard.auth import actor, allowed, needs_sentence, require
from dashboard.components import (
    DOCUMENT_PAGE,
    LIVE_SECONDS,
    database_required,
    literal,
    table,
    when,
    zone_name,
)
from dashboard.db import settings as app_settings
from dashboard.text import chart_text
from operations import Refused
from operations.reviews import LABELS

WHY = {
    None: "any reason",
    "review": "the evaluator was in doubt",
    "unsure": "it was unsure",
    "reported": "reported",
}
LIST_SIZE = 20

st.title("Review")
require(Permission.READ)
acting = actor()
reviewing = allowed(Permission.REVIEW)
db = views.db_key()
settings = app_settings()

with database_required():
    source_names = views.source_options(db)
source_col, why_col, label_col = st.columns(3)
source_id = source_col.selectbox(
    "Source",
    [None, *source_names],
    format_func=lambda i: "all sources" if i is None else source_names[i],
    key="review_source",
)
reason = why_col.selectbox("Waiting because", list(WHY), format_func=lambda r: WHY[r], key="review_reason")
model_label = label_col.selectbox(
    "The evaluator said",
    [None, "review", *LABELS],
    format_func=lambda v: "any label" if v is None else v,
    key="review_model_label",
)
f = views.ReviewFilter(source_id=source_id, reason=reason, model_label=model_label)


@st.fragment(run_every=LIVE_SECONDS)
def waiting_list() -> None:
    with database_required():
        count = views.review_count(db, f)
        overdue, oldest = views.review_overdue(db, settings.review_overdue_hours)
        items = views.review_items(db, f, LIST_SIZE, 0)
    if overdue:
        st.warning(
            f"{overdue:,} document(s) have waited longer than {settings.review_overdue_hours:g} h "
            f"(the oldest since {when(oldest)}).",
            icon=":material/schedule:",
        )
    if not count:
        st.info("Nothing waits for review on this filter.", icon=":material/task_alt:")
        st.caption(f"Checked {when(datetime.now(UTC))}; refreshes every {LIVE_SECONDS} s.")
        return
    st.caption(
        f"{count:,} document(s) wait on this filter, oldest first (the first {min(count, LIST_SIZE)} below). "
        f"Refreshes every {LIVE_SECONDS} s."
    )
    table(
        pd.DataFrame(
            [
                {
                    "document": i.artifact_id,
                    "title": i.title or i.uri,
                    "source": i.source_name,
                    "evaluator said": i.model_label,
                    "relevance": i.relevance,
                    "why": i.why,
                    "evaluated": i.evaluated_at,
                }
                for i in items
            ]
        ),
        key="review_waiting",
        column_config={
            "evaluated": st.column_config.DatetimeColumn(
                f"evaluated ({zone_name()})", format="YYYY-MM-DD HH:mm"
            ),
            "relevance": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
        },
    )


def decide(artifact_id: int, label: str) -> None:
    """A button's callback: runs before the page, with the reason as typed now (not when it was drawn)."""
    why = str(st.session_state.get("review_note", ""))
    try:
        with database_required():
            result = views.review(acting, artifact_id, label, why)
    except Refused as exc:
        st.session_state["review_error"] = exc.message
    else:
        verb = "overridden" if result.overridden else "confirmed"
        st.session_state["review_done"] = f"Document {artifact_id}: {label} ({verb})."
        st.session_state["review_note"] = ""


def one_at_a_time() -> None:
    skip = int(st.session_state.get("review_skip", 0))
    with database_required():
        count = views.review_count(db, f)
        items = views.review_items(db, f, 1, skip % count if count else 0)
    if "review_done" in st.session_state:
        st.success(literal(st.session_state.pop("review_done")), icon=":material/check:")
    if "review_error" in st.session_state:
        st.error(literal(st.session_state.pop("review_error")))
    if not items:
        st.caption("Nothing to decide here.")
        return
    item = items[0]
    st.markdown(
        f"**{literal(item.title or item.uri)}** · source **{literal(item.source_name)}** · "
        f"{skip % count + 1} of {count:,}"
    )
    st.page_link(
        DOCUMENT_PAGE, label=f"Open document {item.artifact_id}", query_params={"doc": str(item.artifact_id)}
    )
    verdict, text_col = st.columns([2, 3])
    with verdict:
        a, b = st.columns(2)
        a.metric("The evaluator said", item.model_label)
        b.metric("Relevance", "—" if item.relevance is None else f"{item.relevance:.2f}")
        st.caption(f"Confidence {item.confidence:.2f} · {literal(item.evaluator)} · {literal(item.why)}")
        st.text(item.rationale)
        if item.reported_by:
            st.markdown(f"Reported by {literal(item.reported_by)}: {literal(item.report_note or '')}")
    with text_col:
        if allowed(Permission.READ_TEXT):
            try:
                with database_required():
                    body = views.document_text(acting, item.artifact_id)
            except Refused as exc:
                st.caption(literal(exc.message))
            else:
                st.text_area(
                    "Text", body or "", height=260, disabled=True, key=f"review_text_{item.artifact_id}"
                )
        else:
            st.caption(literal(needs_sentence(Permission.READ_TEXT)))
    if not reviewing:
        st.caption(literal(needs_sentence(Permission.REVIEW)))
        return
    st.text_input("Reason (needed to change the evaluator's label)", key="review_note")
    confirm, relevant, irrelevant, next_ = st.columns(4)
    confirmable = item.model_label in LABELS
    confirm.button(
        f"Confirm {item.model_label}" if confirmable else "Confirm",
        key="review_confirm",
        type="primary",
        shortcut="a",
        disabled=not confirmable,
        help="Agree: keep the evaluator's label (key a)"
        if confirmable
        else "The evaluator gave no label to confirm",
        on_click=decide,
        args=(item.artifact_id, item.model_label),
    )
    relevant.button(
        "Relevant",
        key="review_relevant",
        shortcut="1",
        help="Key 1",
        on_click=decide,
        args=(item.artifact_id, "relevant"),
    )
    irrelevant.button(
        "Irrelevant",
        key="review_irrelevant",
        shortcut="0",
        help="Key 0",
        on_click=decide,
        args=(item.artifact_id, "irrelevant"),
    )
    if next_.button("Next", key="review_next", shortcut="n", help="Leave this one for later (key n)"):
        st.session_state["review_skip"] = skip + 1
        st.rerun()


def in_bulk() -> None:
    if not reviewing:
        st.caption(literal(needs_sentence(Permission.REVIEW)))
        return
    with database_required():
        count = views.review_count(db, f)
    st.caption(f"{count:,} document(s) wait on the filter above; a bulk decision applies to exactly these.")
    actions = {"confirm": "Confirm the evaluator's label", **{label: f"Set {label}" for label in LABELS}}
    action = st.radio("Decision", list(actions), format_func=lambda a: actions[a], key="bulk_review_action")
    why = st.text_input("Reason (needed where a label changes)", key="bulk_review_reason")
    if st.button(f"Decide all {count:,}", key="bulk_review_go", disabled=not count, type="primary"):
        try:
            with database_required():
                result = views.review_waiting(acting, f, count, None if action == "confirm" else action, why)
        except Refused as exc:
            st.error(literal(exc.message))
        else:
            st.success(f"{result.decided:,} document(s) decided, {result.overridden:,} of them overridden.")


def agreement() -> None:
    weeks = 12
    with database_required():
        frame = views.agreement_rows(db, weeks, zone_name())
    if frame.empty:
        st.caption(f"No reviews in the last {weeks} weeks.")
        return
    per_week = frame.groupby(["week", "evaluator"], as_index=False)[["reviewed", "overridden"]].sum()
    per_week["override share"] = per_week["overridden"] / per_week["reviewed"]
    fig = px.bar(
        per_week,
        x="week",
        y="override share",
        color="evaluator",
        barmode="group",
        hover_data=["reviewed", "overridden"],
        labels={"week": f"week starting ({zone_name()})", "override share": "share overridden"},
    )
    fig.update_yaxes(tickformat=".0%", range=[0, 1])
    fig.for_each_trace(lambda t: t.update(name=chart_text(t.name)))
    st.plotly_chart(fig, key="agreement_chart")
    per_source = frame.groupby(["evaluator", "source"], as_index=False)[["reviewed", "overridden"]].sum()
    per_source["override share"] = (per_source["overridden"] / per_source["reviewed"]).map("{:.0%}".format)
    table(per_source, key="agreement_sources")
    st.caption(
        f"Reviews of the last {weeks} weeks: how often a person changed the evaluator's label. A low share "
        "means people agree with the model; a rising one, that its topics or model need attention."
    )


def reevaluate() -> None:
    """Judge stored documents again with today's evaluator and topics (a durable workflow)."""
    if reviewing:
        st.caption(
            "When the topics or the evaluator change, judge stored documents again. People's decisions are kept; "
            "the evaluator's new verdict is shown beside them."
        )
        where, which_batch, which_label, stale = st.columns(4)
        scope_source = where.selectbox(
            "Source",
            [None, *source_names],
            format_func=lambda i: "all sources" if i is None else source_names[i],
            key="reeval_source",
        )
        batch_no = which_batch.number_input("Batch (0: any)", min_value=0, step=1, key="reeval_batch")
        scope_label = which_label.selectbox(
            "Label",
            [None, "review", *LABELS],
            format_func=lambda v: "any label" if v is None else v,
            key="reeval_label",
        )
        stale_only = stale.checkbox(
            "Only stale verdicts", key="reeval_stale", help="Judged against other topics or another model"
        )
        scope = views.ReevaluationScope(
            source_id=scope_source,
            batch_id=int(batch_no) or None,
            label=scope_label,
            stale_only=stale_only,
        )
        try:
            with database_required():
                plan = views.reevaluation_preview(acting, scope)
        except Refused as exc:
            st.error(literal(exc.message))
            return
        st.info(literal(plan.sentence()), icon=":material/calculate:")
        why = st.text_input("Reason (for the audit log)", key="reeval_reason")
        if st.button(
            f"Re-evaluate {plan.documents:,} document(s)",
            key="reeval_start",
            disabled=not plan.documents,
            type="primary",
        ):
            try:
                with database_required():
                    started = views.start_reevaluation(acting, scope, plan.documents, why)
            except Refused as exc:
                st.error(literal(exc.message))
            else:
                st.success(f"Re-evaluation {started} started.")
    else:
        st.caption(literal(needs_sentence(Permission.REVIEW)))
    runs()


@st.fragment(run_every=LIVE_SECONDS)
def runs() -> None:
    with database_required():
        recent = views.recent_reevaluations(acting)
    if not recent:
        st.caption("No re-evaluation yet.")
        return
    st.markdown("**Re-evaluations** (the last 10; progress refreshes every few seconds)")
    price = settings.openai_price_per_million_tokens
    for run in recent:
        share = run.done / run.total if run.total else 1.0
        cost = f", cost {run.tokens / 1e6 * price:,.2f}" if price is not None and run.tokens else ""
        tokens = f", {run.tokens:,} tokens{cost}" if run.tokens else ""
        st.progress(
            min(share, 1.0),
            text=literal(
                f"{run.id} · {run.description} · {run.status} · {run.done:,} of {run.total:,}{tokens} · "
                f"{run.evaluator} · by {run.started_by} {when(run.created_at)}"
            ),
        )
        cancelling = run.status == "running" and reviewing
        if cancelling and st.button("Cancel", key=f"reeval_cancel_{run.id}", icon=":material/stop_circle:"):
            try:
                with database_required():
                    views.cancel_reevaluation(acting, run.id, "cancelled on the Review page")
            except Refused as exc:
                st.error(literal(exc.message))
            else:
                st.toast(f"Re-evaluation {run.id}: cancel requested; it stops at its next heartbeat.")


waiting_list()
one, bulk, agree, again = st.tabs(["One at a time", "In bulk", "Agreement", "Re-evaluate"])
with one:
    one_at_a_time()
with bulk:
    in_bulk()
with agree:
    agreement()
with again:
    reevaluate()
