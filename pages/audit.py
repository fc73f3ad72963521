"""Audit: every operator action (register, edit or delete a source, refresh, approve, reject), with filters."""

from __future__ import annotations

from datetime import datetime, timedelta

import streamlit as st

from core.roles import Permission
from dashboard import audit, formatting, library
from dashboard.auth import require
from dashboard.components import database_required, pager, zone_name
from dashboard.components import table as rows_table
from dashboard.db import reading, sessions

PAGE_SIZE = 50
ALL = "all"

st.title("Audit")
require(Permission.READ_AUDIT)

with database_required(), reading() as session:
    actors, actions = audit.options(session)

actor_col, action_col, target_col, range_col = st.columns([1, 1, 2, 2])
actor = actor_col.selectbox("Actor", [ALL, *actors], key="audit_actor")
action = action_col.selectbox("Action", [ALL, *actions], key="audit_action")
target = target_col.text_input(
    "Target contains", key="audit_target", placeholder="source:3, batch:12 or a name"
)
zone = zone_name()
today = datetime.now(formatting.zone(zone)).date()
picked = range_col.date_input(
    f"Between ({zone} dates)", value=[], max_value=today, key="audit_dates", help="Leave empty for all time."
)


days = list(picked) if isinstance(picked, tuple | list) else [picked] if picked else []
since = library.day_start(days[0], zone) if days else None
until = library.day_start(days[-1], zone) + timedelta(days=1) if days else None
f = audit.AuditFilter(
    actor=None if actor == ALL else actor,
    action=None if action == ALL else action,
    target=target,
    since=since,
    until=until,
)

with database_required(), reading() as session:
    total = audit.count(session, f)
    st.caption(
        f"{total:,} event(s), newest first; times are in {zone_name()}. A target keeps the name it had "
        "when the event was written, so it stays readable after the source is deleted."
    )
    table = st.container()
    offset = pager(total, PAGE_SIZE, key="audit_page")
    frame = audit.page(session, f, limit=PAGE_SIZE, offset=offset)

with table:
    rows_table(frame, key="audit_events")
st.download_button(
    "Download CSV",
    data=audit.csv_export(sessions(), f, zone=zone_name()),
    file_name="loreguard-audit.csv",
    mime="text/csv",
    icon=":material/download:",
    key="audit_csv",
    on_click="ignore",
    disabled=not total,
)
st.caption(
    f"The export holds the filtered events, newest first, at most {audit.EXPORT_CAP:,} rows; times in "
    f"{zone_name()} (ISO 8601 with the offset)."
)
