"""One document (?doc=ID): its text (for roles that may see text), metadata, the evaluation in full, exact and near
duplicates with links, its batch and source, and every time its content was seen."""

from __future__ import annotations

import pandas as pd
import streamlit as st

from core.roles import Permission
from dashboard import documents, views
from dashboard.auth import actor, allowed, needs_sentence, require
from dashboard.components import (
    BATCHES_PAGE,
    DOCUMENT_PAGE,
    LIBRARY_PAGE,
    database_required,
    literal,
    table,
    when,
)
from dashboard.formatting import status_word
from operations import Refused, reviews


def review_actions(doc: documents.Document) -> None:
    """Decide the label here (analysts), or report a verdict that looks wrong (anyone who reads)."""
    person = actor()
    if allowed(Permission.REVIEW):
        with st.popover("Review the label", icon=":material/rate_review:"):
            choice = st.radio(
                "Label",
                list(reviews.LABELS),
                horizontal=True,
                key="doc_review_label",
                index=list(reviews.LABELS).index(doc.label) if doc.label in reviews.LABELS else None,
            )
            reason = st.text_input("Reason (needed to change the evaluator's label)", key="doc_review_reason")
            if st.button("Save decision", key="doc_review_save", disabled=choice is None):
                try:
                    with database_required():
                        views.review(person, doc.id, str(choice), reason)
                except Refused as exc:
                    st.error(literal(exc.message))
                else:
                    st.rerun()
    with st.popover("Report this verdict", icon=":material/flag:"):
        note = st.text_input("What looks wrong?", key="doc_report_note")
        if st.button("Send to review", key="doc_report_send"):
            try:
                with database_required():
                    views.report(person, doc.id, note)
            except Refused as exc:
                st.error(literal(exc.message))
            else:
                st.success("Sent to the Review inbox.")


st.title("Document")
require(Permission.READ)
db = views.db_key()

doc_id = int(st.number_input("Document", min_value=0, step=1, key="doc", bind="query-params"))
st.page_link(LIBRARY_PAGE, label="Back to the library", icon=":material/arrow_back:")
if not doc_id:
    st.info("Open a document from the Library, or give its number above.")
    st.stop()

with database_required():
    view = views.document_view(db, doc_id)
if view is None:
    st.warning(f"There is no document {doc_id}.")
    st.stop()
doc = view.document

st.subheader(literal(doc.title or doc.uri))
st.markdown(
    f"{literal(status_word(doc.status))} · source **{literal(doc.source_name)}** · "
    f"batch {doc.batch_id} · {literal(doc.content_type)}"
)
if doc.gone_at is not None:
    st.warning(
        f"Gone from its source since {when(doc.gone_at)}: a refresh no longer found it there. It stays in the "
        "library; it is marked present again if it comes back.",
        icon=":material/delete_sweep:",
    )
st.page_link(
    BATCHES_PAGE,
    label=f"Batch {doc.batch_id} of {literal(doc.source_name)}",
    query_params={"batch": str(doc.batch_id)},
)
st.caption(literal(doc.uri))

meta, evaluation = st.columns(2)
with meta:
    st.markdown("**Metadata**")
    st.text(
        "\n".join(
            [
                f"Language: {doc.language or '—'}",
                f"Words: {doc.word_count:,}" if doc.word_count is not None else "Words: —",
                f"Author: {doc.author or '—'}",
                f"Published: {when(doc.published_at)}",
                f"Gathered: {when(doc.ingested_at)}",
                f"Stored: {when(doc.stored_at)}",
                f"Content hash: {doc.content_hash or '—'}",
            ]
            + ([f"Failed at {doc.failed_stage}: {doc.error}"] if doc.error else [])
        )
    )
with evaluation:
    st.markdown("**Evaluation**")
    if doc.label is None:
        st.caption("Not evaluated (only stored documents are).")
    else:
        a, b, c = st.columns(3)
        a.metric("Label", literal(doc.label))
        b.metric("Relevance", "—" if doc.relevance is None else f"{doc.relevance:.2f}")
        c.metric("Credibility", "—" if doc.credibility is None else f"{doc.credibility:.2f}")
        st.caption(
            f"Confidence {doc.confidence:.2f} · evaluator {literal(doc.evaluator)}"
            + (f" · model {literal(doc.model)}" if doc.model else "")
            + (f" · topics version {literal(doc.topics_version)}" if doc.topics_version else "")
            + f" · {when(doc.evaluated_at)}"
        )
        if doc.reviewed_by:
            changed = doc.model_label != doc.label
            st.markdown(
                f"**Decided by {literal(doc.reviewed_by)}** {when(doc.reviewed_at)}: "
                + (
                    f"{literal(doc.label)}, overriding the evaluator's {literal(doc.model_label or '—')}"
                    if changed
                    else f"confirmed the evaluator's {literal(doc.label)}"
                )
                + (f" — {literal(doc.review_reason)}" if doc.review_reason else "")
            )
        elif doc.needs_review:
            st.markdown(
                "**Waiting for review** in the Review inbox"
                + (
                    f", reported by {literal(doc.reported_by)}: {literal(doc.report_note or '')}"
                    if doc.reported_by
                    else ""
                )
            )
        st.markdown("**Rationale** (the evaluator's)")
        st.text(doc.rationale or "")
        review_actions(doc)
if doc.clarification:
    st.markdown("**Clarification**")
    st.text(doc.clarification)

st.markdown("**Text**")
if allowed(Permission.READ_TEXT):
    try:
        with database_required():
            text = views.document_text(actor(), doc.id)
    except Refused as exc:  # roles changed since the page was drawn
        st.caption(literal(exc.message))
    else:
        if text:
            st.text_area(
                "Text", text, height=360, disabled=True, label_visibility="collapsed", key="doc_text"
            )
        else:
            st.caption("No text kept for this document (it failed before its text was extracted).")
else:
    st.caption(literal(needs_sentence(Permission.READ_TEXT)))

LINK = {"document": st.column_config.LinkColumn("document", display_text=r"document\?doc=(\d+)")}


def linked(frame: pd.DataFrame) -> pd.DataFrame:
    """The document column as links to this page (relative: document?doc=ID)."""
    out = frame.copy()
    out["document"] = [f"document?doc={i}" for i in out["document"]]
    return out


st.markdown("**Exact duplicates** (the same content stored elsewhere)")
if view.exact.empty:
    st.caption("No other document holds the same content.")
else:
    table(linked(view.exact), key="exact_duplicates", column_config=LINK)
if doc.duplicate_of_id:
    st.page_link(
        DOCUMENT_PAGE,
        label=f"Original: document {doc.duplicate_of_id}",
        query_params={"doc": str(doc.duplicate_of_id)},
    )
st.markdown("**Near duplicates** (nearly the same text)")
if view.near.empty:
    st.caption("No document with nearly the same text.")
else:
    table(linked(view.near), key="near_duplicates", column_config=LINK)
if doc.near_duplicate_of_id:
    st.page_link(
        DOCUMENT_PAGE,
        label=f"Near to document {doc.near_duplicate_of_id}"
        + (f" (similarity {doc.similarity:.2f})" if doc.similarity is not None else ""),
        query_params={"doc": str(doc.near_duplicate_of_id)},
    )

capped = "+" if len(view.sightings) >= views.documents.SIGHTINGS_LIMIT else ""
st.markdown(f"**Seen {len(view.sightings)}{capped} time(s)** (this content in every batch of every source)")
table(linked(view.sightings), key="sightings", column_config=LINK)
