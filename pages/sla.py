"""SLA, for managers: on-time share against the target, processing-time percentiles, breaches, batches at
risk now and a weekly summary with CSV export. Figures come from the daily rollups (dashboard.sla_report)."""

from __future__ import annotations

from datetime import UTC, datetime

import streamlit as st

from core.roles import Permission
from dashboard import charts
from dashboard.auth import allowed, needs_sentence, require
from dashboard.components import BATCHES_PAGE, database_required, literal, table, when, zone_name
from dashboard.db import reading, settings
from dashboard.sla_report import SlaReport, sla_report

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
        )


with database_required():
    r = report(s.target_database_url, WINDOWS[window], zone, datetime.now(UTC).strftime("%Y%m%d%H%M"))

share, docs, breaches, still_open, risk = st.columns(5)
share.metric(
    "Documents on time",
    "n/a" if r.share is None else f"{r.share:.1%}",
    delta=None if r.share is None else f"{(r.share - s.sla_target_share) * 100:+.1f} pts vs target",
)
docs.metric("Documents in finished batches", f"{r.documents:,}")
breaches.metric("Breaches in window", f"{r.breaches_in_window:,}")
still_open.metric("Breaches still open", f"{r.breaches_open:,}")
risk.metric("Batches at risk now", int((r.at_risk["level"] != "ok").sum()) if not r.at_risk.empty else 0)
st.caption(
    literal(
        f"Documents in finished batches: {r.documents:,}; failed (counted late): {r.failed:,}. "
        f"Breaches in window: {r.breaches_in_window:,}; still open: {r.breaches_open:,}."
    )
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

if r.documents == 0:
    st.info("No finished batch in this window yet.")
else:
    st.subheader("On time per day")
    st.plotly_chart(
        charts.sla_daily_figure(r.daily, target=s.sla_target_share, days=r.days, zone=zone), key="sla_daily"
    )
    st.caption(
        "Documents of the batches started each day, once they finished; a failed document counts as late. "
        "Hatched: no finished batch that day. Grey line: documents (right axis)."
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
    st.plotly_chart(
        charts.sla_percentiles_figure(r.percentiles, target_hours=s.sla_target_hours, days=r.days, zone=zone),
        key="sla_percentiles",
    )
    st.dataframe(
        r.percentiles[r.percentiles["documents"] > 0],
        hide_index=True,
        key="sla_percentiles_table",
        column_config={c: st.column_config.NumberColumn(format="%.2f") for c in ("p50 h", "p95 h", "p99 h")},
    )
    st.caption(
        "Hours from a batch's start to each stored document, per day of the batch's start; each percentile "
        "is an upper bound within 9% (the processing-time histogram's bucket)."
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
weekly = r.weekly.rename(columns={"week": f"week ({zone})"})  # weeks start on a Monday of the zone
st.dataframe(
    weekly,
    hide_index=True,
    key="sla_weekly",
    column_config={"share": st.column_config.NumberColumn(format="percent")},
)
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
