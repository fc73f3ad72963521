"""Sources: the registered sources with their refreshes, actions on one source, and the register form."""

from __future__ import annotations

import streamlit as st

from core.roles import Permission
from core.vocabulary import SOURCE_KINDS
from dashboard import sources, views
from dashboard.auth import actor, allowed, needs_sentence, require
from dashboard.components import BATCHES_PAGE, database_required, literal, table, when, zone_name
from dashboard.db import operations_context, settings
from dashboard.formatting import every, status_word
from dashboard.temporal import TemporalUnavailable, gateway
from dashboard.views import SourceSummary
from operations import AlreadyRunning, Refused
from operations import batches as batch_ops
from operations import sources as source_ops
from operations.errors import Unreachable
from operations.sources import SourceChanged

KIND_LABELS = {"folder": "folder (a path)", "feed": "feed (RSS/Atom URL)", "web": "web page (URL)"}
NOTICE = "sources_notice"  # (message, batch id or None), shown once after an action's rerun
DELETING = "sources_deleting"  # id of the source whose delete dialog is open
FORM_KEYS = ("new_name", "new_kind", "new_location", "new_interval")
SELECT = "sources_select"  # the source to choose under "Act on a source" on the next run (just registered)

st.title("Sources")
require(Permission.READ)


def done(message: str, batch_id: int | None = None, changed: SourceChanged | None = None) -> None:
    """Show `message` (and the schedule's warning, if any) after the rerun that shows the change."""
    views.forget_sources()
    st.session_state[NOTICE] = (message, batch_id)
    if changed is not None and changed.warning:
        st.session_state[NOTICE + "_schedule"] = changed.warning[0].upper() + changed.warning[1:] + "."
    st.rerun()


schedule_problem = st.session_state.pop(NOTICE + "_schedule", None)
if schedule_problem:
    st.warning(literal(schedule_problem), icon=":material/schedule:")
notice = st.session_state.pop(NOTICE, None)
if notice is not None:
    message, batch_id = notice
    st.success(literal(message), icon=":material/check_circle:")
    if batch_id is not None:
        st.page_link(BATCHES_PAGE, label=f"Open batch {batch_id}", query_params={"batch": str(batch_id)})

with database_required():
    summaries = views.source_summaries(views.db_key())

# --- the table ---------------------------------------------------------------------------------------------

if summaries:
    times = sources.schedule_times(gateway(), [s.id for s in summaries])
    with database_required():
        freshness = views.source_freshness(views.db_key())
    frame = sources.with_schedule_times(
        sources.summary_frame(
            summaries,
            freshness,
            with_tokens=settings().shows_tokens,
            price=settings().openai_price_per_million_tokens,
        ),
        times,
    )
    table(
        frame,
        key="sources_table",
        width="stretch",
        column_order=[c for c in frame.columns if c != "name"],  # "source" shows the name as its link
        column_config={
            "source": st.column_config.LinkColumn(
                "name", display_text=sources.NAME_LINK, width="small", help="Opens the source's batches"
            ),
            "paused": st.column_config.CheckboxColumn(width="small"),
            "location": st.column_config.TextColumn(width="medium"),
            "freshness": st.column_config.TextColumn(width="medium"),
            "id": st.column_config.NumberColumn(width="small"),
            "batches": st.column_config.LinkColumn(display_text=sources.COUNT_LINK, width="small"),
            "failed batches": st.column_config.LinkColumn(display_text=sources.COUNT_LINK, width="small"),
            "tokens": st.column_config.NumberColumn(
                width="small", help="What the model evaluator's API reported for the source's documents"
            ),
            "cost": st.column_config.NumberColumn(
                format="%.2f", width="small", help="The tokens at LOREGUARD_OPENAI_PRICE_PER_MILLION_TOKENS"
            ),
        },
    )
    stale = [s.name for s in summaries if freshness.get(s.id) and not s.paused]
    if stale:
        st.warning(
            literal(
                f"Stale: {', '.join(stale)}. Nothing new for longer than the interval allows, or the "
                "refreshes keep failing; the SLA monitor alerts through the notification channels."
            ),
            icon=":material/schedule:",
        )
    st.caption(
        "A source's name, its batches and failed batches open its batches (the filter in the address); "
        "documents and "
        "failed documents are totals over every batch of the source; next and last run are as the source's "
        f"schedule reports them; times are in {zone_name()}."
        + (" Temporal is unavailable: schedule times are not shown." if times is None else "")
    )
else:
    st.info("No sources yet. Register one below: a folder, an RSS/Atom feed or a web page.")

# --- actions on one source ---------------------------------------------------------------------------------


@st.dialog("Delete source", on_dismiss=lambda: st.session_state.pop(DELETING, None))
def confirm_delete(source: SourceSummary) -> None:
    st.markdown(f"Delete **{literal(source.name)}** with its {source.batches:,} batch(es) and documents?")
    st.caption("This cannot be undone. The deletion is recorded in the audit log.")
    yes, no = st.columns(2)
    if yes.button("Delete", type="primary", key="delete_confirmed"):
        st.session_state.pop(DELETING, None)
        try:
            with database_required():
                changed = source_ops.delete_source(actor(), operations_context(), source.id)
        except Refused as exc:
            st.session_state[NOTICE + "_error"] = exc.message
            st.rerun()
        done(f"Source {changed.name!r} deleted.", changed=changed)
    if no.button("Cancel", key="delete_cancelled"):
        st.session_state.pop(DELETING, None)
        st.rerun()


if not allowed(Permission.MANAGE_SOURCES):  # the operations refuse anyway; this spares a useless form
    st.caption(literal(needs_sentence(Permission.MANAGE_SOURCES)))
    st.stop()

if summaries:
    st.subheader("Act on a source")
    refused = st.session_state.pop(NOTICE + "_error", None)
    if refused:
        st.error(literal(refused), icon=":material/block:")
    by_id = {s.id: s for s in summaries}
    if st.session_state.get(SELECT) in by_id:
        st.session_state["source_chosen"] = st.session_state.pop(SELECT)
    chosen_id = st.selectbox("Source", list(by_id), format_func=lambda i: by_id[i].name, key="source_chosen")
    chosen = by_id[chosen_id]
    st.caption(
        f"{literal(chosen.kind)} · {literal(chosen.location)} · {every(chosen.refresh_interval_seconds)} · "
        f"last refresh {when(chosen.last_refresh)} ({literal(status_word(chosen.last_status) if chosen.last_status else 'never')})"
        + (" · paused" if chosen.paused else "")
    )
    full = st.checkbox(
        "Full refresh",
        key="refresh_full",
        help="A refresh gathers and processes only what changed since the last successful one. A full refresh "
        "gathers and processes everything again (after a parser changed, say); unchanged content is still "
        "not stored or evaluated twice.",
    )
    refresh_col, pause_col, interval_col, delete_col = st.columns([1, 1, 2, 1], vertical_alignment="bottom")
    if refresh_col.button("Refresh now", icon=":material/refresh:", key="refresh"):
        try:
            with database_required():
                started = batch_ops.refresh_source(actor(), operations_context(), chosen.id, full=full)
        except AlreadyRunning as exc:
            st.error(literal(exc.message), icon=":material/block:")
            st.page_link(
                BATCHES_PAGE, label=f"Open batch {exc.batch_id}", query_params={"batch": str(exc.batch_id)}
            )
        except (Refused, TemporalUnavailable) as exc:
            st.error(
                literal(
                    f"The refresh was not started. {exc}" if isinstance(exc, TemporalUnavailable) else exc
                ),
                icon=":material/cloud_off:",
            )
        else:
            done(
                f"{'Full batch' if full else 'Batch'} {started.batch_id} started for {chosen.name!r} "
                f"(workflow {started.workflow_id}).",
                started.batch_id,
            )
    pause_label = "Resume" if chosen.paused else "Pause"
    if pause_col.button(pause_label, icon=":material/pause_circle:", key="pause"):
        with database_required():
            act = source_ops.resume_source if chosen.paused else source_ops.pause_source
            changed = act(actor(), operations_context(), chosen.id)
        done(f"Source {chosen.name!r} {'resumed' if chosen.paused else 'paused'}.", changed=changed)
    with interval_col:
        interval = st.number_input(
            "Refresh interval (seconds)",
            min_value=0,
            value=chosen.refresh_interval_seconds,
            step=60,
            key=f"interval_{chosen.id}",
        )
        if st.button("Save interval", key="save_interval"):
            try:
                with database_required():
                    changed = source_ops.set_source_interval(
                        actor(), operations_context(), chosen.id, int(interval)
                    )
            except Refused as exc:
                st.error(literal(exc.message), icon=":material/block:")
            else:
                done(f"{chosen.name!r} now refreshes every {int(interval)} s.", changed=changed)
    if allowed(Permission.DELETE_SOURCES) and delete_col.button(
        "Delete…", icon=":material/delete:", key="delete"
    ):
        st.session_state[DELETING] = chosen.id
    deleting = st.session_state.get(DELETING)
    if deleting in by_id:
        confirm_delete(by_id[deleting])

# --- register ----------------------------------------------------------------------------------------------

st.subheader("Register a source")
with st.form("register_source"):
    name = st.text_input("Name", max_chars=200, key="new_name")
    kind = st.selectbox("Kind", SOURCE_KINDS, format_func=lambda k: KIND_LABELS.get(k, k), key="new_kind")
    location = st.text_input(
        "Location", help="A folder on the workers' machine, or an http(s) URL.", key="new_location"
    )
    interval = st.number_input(
        "Refresh interval (seconds)", min_value=0, value=3600, step=60, key="new_interval"
    )
    preview_col, register_col = st.columns(2)
    wants_preview = preview_col.form_submit_button("Preview (dry run)", icon=":material/visibility:")
    wants_register = register_col.form_submit_button("Register", type="primary", icon=":material/add:")

if wants_preview or wants_register:
    try:
        with database_required():
            ctx = operations_context()
            draft = source_ops.check_source(
                ctx, name=name, kind=kind, location=location, interval=int(interval)
            )
            if wants_preview:
                with st.spinner("Reading the first documents..."):
                    dry_run = source_ops.preview(actor(), ctx, draft)
                    preview = sources.preview_frame(dry_run.rows)
            else:
                changed = source_ops.register_source(actor(), ctx, draft)
    except Unreachable as exc:  # the location is well formed; it may be down now, or not reachable from here
        st.warning(
            literal(exc.message)
            + ". It can still be registered; its batches will fail until it is reachable.",
            icon=":material/cloud_off:",
        )
    except Refused as exc:
        for problem in exc.message.splitlines():
            st.error(literal(problem), icon=":material/block:")
    else:
        if wants_register:
            for key in FORM_KEYS:  # an empty form for the next source
                st.session_state.pop(key, None)
            st.session_state[SELECT] = changed.source_id  # chosen under "Act on a source" after the rerun
            done(
                f"Source {draft.name!r} registered (id {changed.source_id}); it refreshes "
                f'{every(draft.interval)} on its schedule. It is selected under "Act on a source" above: '
                "Refresh now starts a batch at once.",
                changed=changed,
            )
        st.markdown(f"**Dry run of {literal(draft.name)}**: the first {len(preview)} document(s).")
        if dry_run.summary:
            st.markdown(literal(dry_run.summary))
        if preview.empty:
            st.warning("The source yields no documents yet.")
        else:
            st.dataframe(preview, hide_index=True, key="preview_table")
        st.caption("Nothing was saved. Documents with a problem would fail alone; the rest go through.")
