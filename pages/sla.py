"""SLA, for managers: on-time share against the target, processing-time percentiles, breaches, batches at
risk now and a weekly summary with CSV export. Figures come from the daily rollups (dashboard.sla_report)."""

from __future__ import annotations

from datetime import UTC, datetime

import pandas as pd
import streamlit as st

from core.roles import Permission
from dashboard import charts
from dashboard.auth import allowed, needs_sentence, require
from dashboard.components import BATCHES_PAGE, database_required, literal, table, when, zone_name
from dashboard.db import reading, settings
from dashboard.sla_report import SlaReport, as_shown, fitting_unit, percentiles_in, sla_report

WINDOWS = {"last 7 days": 7, "last 30 days": 30, "last 90 days": 90}

st.title("SLA")
require(Permission.READ)
s = settings()
zone = zone_name()
st.caption(
    f"Target: {s.sla_target_share:.0%} of documents stored within {s.sla_target_hours:g} h of their batch's "
    f"start. The monitor warns past {s.sla_warning_hours:g} h and raises a critical alert past "
    f"{s.sla_critical_hours:g} h of a batch's run. Days and weeks are calendar days in {zone}, by the day a "
    "batch started."
)
window = (
    st.segmented_control("Window", list(WINDOWS), default="last 30 days", key="sla_window") or "last 30 days"
)


@st.cache_data(ttl=30, show_spinner=False)
def report(db: str, days: int, zone: str, minute: str) -> SlaReport:
    with reading() as session:
        return sla_report(
            session,
            now=datetime.now(UTC),
            days=days,
            target_hours=s.sla_target_hours,
            target_share=s.sla_target_share,
            warning_hours=s.sla_warning_hours,
            critical_hours=s.sla_critical_hours,
            zone=zone,
            stale_after_intervals=s.stale_after_intervals,
            stale_after_failures=s.stale_after_failures,
        )


with database_required():
    r = report(s.target_database_url, WINDOWS[window], zone, datetime.now(UTC).strftime("%Y%m%d%H%M"))

stale = r.stale if r.stale is not None else pd.DataFrame(columns=["source", "last new document", "why"])
share, failed_batches, silent, stale_col, cancelled = st.columns(5)
share.metric(
    "Documents on time",
    "n/a" if r.share is None else f"{r.share:.1%}",
    delta=None if r.share is None else f"{(r.share - s.sla_target_share) * 100:+.1f} pts vs target",
    # the share counts only what arrived: with sources down it is not good news, whatever its sign
    delta_color="off" if r.sources_down else "normal",
)
failed_batches.metric(
    "Batches failed outright",
    f"{r.failed_batches:,}",
    help="Ingest failed, rejected or timed out without a decision: their documents never arrived",
)
silent.metric("Sources that delivered nothing", f"{len(r.silent):,}", help="No completed batch in the window")
stale_col.metric(
    "Stale sources now", f"{len(stale):,}", help="Nothing new for longer than their interval allows"
)
cancelled.metric(
    "Batches cancelled", f"{r.cancelled_batches:,}", help="Stopped by an operator or in Temporal"
)
docs, breaches, still_open, risk = st.columns(4)
docs.metric("Documents in finished batches", f"{r.documents:,}")
breaches.metric("Breaches in window", f"{r.breaches_in_window:,}")
still_open.metric("Breaches still open", f"{r.breaches_open:,}")
risk.metric("Batches at risk now", int((r.at_risk["level"] != "ok").sum()) if not r.at_risk.empty else 0)
if r.sources_down:
    names = ", ".join(r.silent[:10]) + (" …" if len(r.silent) > 10 else "")
    st.error(
        literal(
            f"Not met: {r.failed_batches:,} batch(es) failed outright and {len(r.silent):,} source(s) delivered "
            f"nothing in this window{f' ({names})' if names else ''}. The on-time share counts only the "
            "documents that arrived."
        ),
        icon=":material/error:",
    )
elif r.share is not None and r.share >= s.sla_target_share:
    st.success(
        f"Met the target: {r.share:.1%} of documents on time, every source delivered.",
        icon=":material/check_circle:",
    )
st.caption(
    literal(
        f"Documents in finished batches: {r.documents:,}; failed (counted late): {r.failed:,}. "
        f"Batches failed outright: {r.failed_batches:,}; cancelled: {r.cancelled_batches:,} (not counted in "
        f"the share). Breaches in window: {r.breaches_in_window:,}; still open: {r.breaches_open:,}."
    )
)
if len(stale):
    st.subheader("Stale sources")
    shown = stale.assign(
        **{"last new document": [when(v) if pd.notna(v) else "never" for v in stale["last new document"]]}
    )  # "never", not "None", for a source that has not stored a document yet
    table(shown.rename(columns={"last new document": f"last new document ({zone})"}), key="sla_stale")
    st.caption(
        f"Stale: no new document for {s.stale_after_intervals:g} refresh intervals, or the last "
        f"{s.stale_after_failures} refreshes failed; the SLA monitor alerts once per source through the "
        "notification channels."
    )
if r.stale_target:
    st.warning(
        f"Some days were counted against another target ({', '.join(f'{t:g} h' for t in r.rollup_targets)}); "
        "run `loreguard sla rebuild` to count them against today's.",
        icon=":material/warning:",
    )
if r.stale_zone:
    st.warning(
        f"Some days were counted as calendar days of another zone ({', '.join(r.rollup_zones)}); "
        f"run `loreguard sla rebuild` to count them in {zone}.",
        icon=":material/warning:",
    )

if r.documents == 0 and not r.failed_batches:
    st.info("No finished batch in this window yet.")
else:
    st.subheader("On time per day")
    st.plotly_chart(
        charts.sla_daily_figure(r.daily, target=s.sla_target_share, days=r.days, zone=zone), key="sla_daily"
    )
    st.caption(
        "Documents of the batches started each day, once they finished; a failed document counts as late. "
        'Hatched stub: no document that day ("N failed": batches failed outright). Grey line: documents '
        "(right axis)."
    )
    st.subheader("On time per source")
    st.plotly_chart(charts.sla_source_figure(r.by_source, target=s.sla_target_share), key="sla_sources")
    st.dataframe(
        r.by_source,
        hide_index=True,
        key="sla_sources_table",
        column_config={
            "share": st.column_config.NumberColumn(format="percent"),
            "worst day share": st.column_config.NumberColumn(format="percent"),
            "worst day": st.column_config.DateColumn(format="YYYY-MM-DD"),
        },
    )
    st.subheader("Processing time percentiles")
    unit = fitting_unit(r.percentiles)
    percentiles = percentiles_in(r.percentiles, unit)
    st.plotly_chart(
        charts.sla_percentiles_figure(
            percentiles, target_hours=s.sla_target_hours, days=r.days, zone=zone, unit=unit
        ),
        key="sla_percentiles",
    )
    st.dataframe(
        percentiles[percentiles["documents"] > 0],
        hide_index=True,
        key="sla_percentiles_table",
        column_config={f"p{n} {unit}": st.column_config.NumberColumn(format="%.2f") for n in (50, 95, 99)},
    )
    st.caption(
        f"{charts.UNIT_WORDS[unit].capitalize()} from a batch's start to each stored document, per day of the "
        "batch's start; each percentile is an upper bound within 9% (the processing-time histogram's bucket)."
    )

st.subheader("Breaches by source and level")
if r.breaches.empty:
    st.success("No SLA breaches in this window.", icon=":material/check_circle:")
else:
    st.plotly_chart(charts.sla_breaches_figure(r.breaches), key="sla_breaches")
    st.dataframe(r.breaches, hide_index=True, key="sla_breaches_table")

st.subheader("Batches in flight")
if r.at_risk.empty:
    st.caption("No batch is in flight.")
else:
    table(r.at_risk, key="sla_at_risk", column_config={"age h": st.column_config.NumberColumn(format="%.2f")})
    st.caption(
        "Projected completion assumes the batch keeps its throughput so far (documents done / time elapsed); "
        "empty while nothing is done yet."
    )
    st.page_link(BATCHES_PAGE, label="Batches", icon=":material/stacks:")

st.subheader("Weekly summary")
# weeks start on a Monday of the zone; shares as the CSV has them
weekly = as_shown(r.weekly.rename(columns={"week": f"week ({zone})"}))
st.dataframe(weekly, hide_index=True, key="sla_weekly")
if allowed(Permission.EXPORT_SLA):
    st.download_button(
        "Download CSV",
        weekly.to_csv(index=False).encode(),
        file_name=f"loreguard-sla-weekly-{r.until:%Y%m%d}.csv",
        mime="text/csv",
        icon=":material/download:",
        key="sla_csv",
    )
else:
    st.caption(literal(needs_sentence(Permission.EXPORT_SLA)))
st.caption(literal(f"From {when(r.since)} to {when(r.until)}."))
