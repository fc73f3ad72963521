"""Charts: pure functions from an aggregated DataFrame to a plotly figure (no queries, no Streamlit)."""

from __future__ import annotations

from datetime import date, datetime, timedelta
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from dashboard.text import chart_text

PRIMARY = "#1f5fbf"
STATUS_COLORS = {
    "Running": "#1f5fbf",
    "Completed": "#2e8540",
    "Failed": "#c0392b",
    "Canceled": "#7f8c8d",
    "Terminated": "#8e44ad",
    "TimedOut": "#d35400",
    "ContinuedAsNew": "#95a5a6",
}


# Each figure's layout is set in one update_layout call with plain dicts: plotly validates every property
# update, and update_xaxes/update_yaxes/add_hline first walk the figure's subplots, which these one-plot
# figures do not have (together ~20 ms a figure, most of the SLA page's render).


def target_line(y: float, label: str) -> dict[str, Any]:
    """Layout entries for a dashed line across the plot at `y`, labelled at its right end (as add_hline)."""
    return {
        "shapes": [
            {"type": "line", "xref": "paper", "x0": 0, "x1": 1, "yref": "y", "y0": y, "y1": y,
             "line": {"dash": "dash", "color": "#333"}}
        ],
        "annotations": [
            {"xref": "paper", "x": 1, "xanchor": "right", "yref": "y", "y": y, "yanchor": "bottom",
             "text": label, "showarrow": False}
        ],
    }  # fmt: skip


def _layout(fig: go.Figure, **layout: Any) -> go.Figure:
    """The house layout (see _layout_dict) set on a figure in one update."""
    fig.update_layout(_layout_dict(**layout))
    return fig


def throughput_figure(frame: pd.DataFrame, *, zone: str = "UTC") -> go.Figure:
    """Documents stored per interval (columns: interval, documents), the hours shown in `zone`."""
    hours = pd.to_datetime(frame["interval"], utc=True).dt.tz_convert(zone)
    fig = go.Figure(
        go.Bar(
            x=hours,
            y=frame["documents"],
            marker_color=PRIMARY,
            hovertemplate=f"%{{x|%Y-%m-%d %H:%M}} ({zone}): %{{y}} documents<extra></extra>",
        )
    )
    return _layout(
        fig,
        x_title=f"hour ({zone})",
        y_title="documents stored",
        xaxis={"type": "date", "tickformat": "%H:%M\n%b %d"},
        yaxis={"tickformat": ",d"},
    )


def workflow_status_figure(frame: pd.DataFrame) -> go.Figure:
    """Workflows per execution status (columns: status, workflows)."""
    fig = go.Figure(
        go.Bar(
            x=frame["workflows"],
            y=[chart_text(s) for s in frame["status"]],
            orientation="h",
            marker_color=[STATUS_COLORS.get(s, PRIMARY) for s in frame["status"]],
            text=frame["workflows"],
            textposition="auto",
            textangle=0,
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    return _layout(fig, height=240, x_title="workflows", yaxis={"autorange": "reversed"})


def stage_timings_figure(frame: pd.DataFrame) -> go.Figure:
    """Mean milliseconds per pipeline stage (columns: stage, mean ms)."""
    fig = go.Figure(
        go.Bar(
            x=[chart_text(s) for s in frame["stage"]],
            y=frame["mean ms"],
            marker_color=PRIMARY,
            text=[f"{v:.1f}" for v in frame["mean ms"]],
            textposition="auto",
            textangle=0,
            hovertemplate="%{x}: %{y:.2f} ms<extra></extra>",
        )
    )
    return _layout(fig, y_title="mean ms per document")


# --- SLA ---------------------------------------------------------------------------------------------------

ON_TIME = "#2e8540"
LATE = "#c0392b"


NO_DATA = "#d5d9e0"
NO_DATA_STUB = 4  # height (in % points) of a day without data: a hatched stub, not a bar
VOLUME = "#5d6d7e"
DAY_MS = 86_400_000


def day_axis(days: list[date], zone: str) -> dict[str, Any]:
    """A date axis over exactly the window's days (calendar days of `zone`, named in the axis title): one tick
    per day (a week for long windows), day labels only, half a day of margin either side, so one day of data
    neither fills the chart nor reads as hours."""
    first, last = days[0], days[-1]
    return {
        "title": {"text": f"day ({zone})"},
        "type": "date",
        "range": [f"{first - timedelta(days=1)} 12:00", f"{last} 12:00"],
        "tick0": f"{first}",
        "dtick": DAY_MS if len(days) <= 14 else 7 * DAY_MS,
        "tickformat": "%b %d",
        "hoverformat": "%Y-%m-%d",
        "showgrid": False,
    }


def _unvalidated(traces: list[dict[str, Any]], **layout: Any) -> go.Figure:
    """A figure from plain trace and layout dicts, built without plotly's per-property validation (its
    `_validate` flag, on every graph object since plotly 4.7): validation costs ~25 ms a figure, most of the
    SLA page's render. tests/dashboard/test_charts.py rebuilds each of these figures with validation on."""
    return go.Figure(data=traces, layout=_layout_dict(**layout), _validate=False)


def _layout_dict(
    *,
    height: int = 260,
    x_title: str = "",
    y_title: str = "",
    xaxis: dict[str, Any] | None = None,
    yaxis: dict[str, Any] | None = None,
    showlegend: bool = False,
    **layout: Any,
) -> dict[str, Any]:
    return {
        "height": height,
        "margin": {"l": 10, "r": 10, "t": 10, "b": 10},
        "xaxis": {"title": {"text": x_title}, **(xaxis or {})},
        "yaxis": {"title": {"text": y_title}, "gridcolor": "#e6e9ef", "rangemode": "tozero", **(yaxis or {})},
        "showlegend": showlegend,
        "plot_bgcolor": "white",
        **layout,
    }


def sla_daily_figure(frame: pd.DataFrame, *, target: float, days: list[date], zone: str) -> go.Figure:
    """On-time share per day (columns: day, documents, on time, late, failed, share NaN when no data).

    A 0% day is a red bar labelled "0%" at the base line; a day without documents from finished batches is a
    low pale hatched stub labelled "no data" (or, in red, "N failed" when batches failed outright that day);
    the documents per day are a grey line on the right-hand axis. The legend names both bar colours.
    """
    frame = frame.set_index("day").reindex(days).reset_index(names="day")
    documents = frame["documents"].fillna(0).astype(int)
    share = frame["share"].astype("float64")
    has_data = documents > 0
    x = [d.isoformat() for d in frame["day"]]
    hover = "%{x|%Y-%m-%d}: %{y:.1f}% on time<br>%{customdata[0]:,} of %{customdata[1]:,} documents" + (
        "; %{customdata[2]:,} late, %{customdata[3]:,} failed<extra></extra>"
    )
    customdata = frame[["on time", "documents", "late", "failed"]].fillna(0).astype(int).to_numpy()
    failed_batches = (
        frame["failed batches"].fillna(0).astype(int) if "failed batches" in frame else documents * 0
    ).to_numpy()
    return _unvalidated(
        [
            {
                "type": "bar",
                "name": "on time",
                "x": x,
                "y": (share * 100).to_numpy(),
                "marker": {
                    "color": [ON_TIME if v >= target else LATE for v in share.fillna(0)],
                    "line": {"color": LATE, "width": [2 if v == 0 else 0 for v in share.fillna(1)]},
                },
                "text": ["0%" if v == 0 else "" for v in share.fillna(1)],
                "textposition": "outside",
                "textfont": {"color": LATE},
                "cliponaxis": False,
                "customdata": customdata,
                "hovertemplate": hover,
                "showlegend": False,
            },
            # The bars are green or red by day: one legend entry for each colour (the trace itself has none).
            *(
                {
                    "type": "bar",
                    "name": name,
                    "x": [None],
                    "y": [None],
                    "marker": {"color": color},
                    "hoverinfo": "skip",
                }
                for name, color in ((f"on time ≥ {target:.0%}", ON_TIME), (f"below {target:.0%}", LATE))
            ),
            {
                "type": "bar",
                "name": "no data",
                "x": [d for d, ok in zip(x, has_data, strict=True) if not ok],
                # a low stub with its label, so a day without data never reads as a full (100%) bar
                "y": [NO_DATA_STUB] * int((~has_data).sum()),
                "text": [f"{n} failed" if n else "no data" for n in failed_batches[~has_data]],
                "textposition": "outside",
                "textfont": {
                    "color": [LATE if n else "#7b8794" for n in failed_batches[~has_data]],
                    "size": 10,
                },
                "cliponaxis": False,
                "marker": {
                    "color": NO_DATA,
                    "opacity": 0.45,
                    "pattern": {"shape": "/", "fgcolor": "#aab2bd"},
                },
                "hovertemplate": "%{x|%Y-%m-%d}: no document from a finished batch; %{text}<extra></extra>",
            },
            {
                "type": "scatter",
                "name": "documents",
                "x": x,
                "y": documents.to_numpy(),
                "yaxis": "y2",
                "mode": "lines+markers",
                "line": {"color": VOLUME, "width": 1},
                "marker": {"size": 5},
                "hovertemplate": "%{x|%Y-%m-%d}: %{y:,} documents<extra></extra>",
            },
        ],
        height=300,
        y_title="% of documents on time",
        xaxis=day_axis(days, zone),
        yaxis={"range": [0, 105]},
        **target_line(target * 100, f"target {target:.0%}"),
        barmode="overlay",
        bargap=0.15,
        showlegend=True,
        legend={"orientation": "h", "y": -0.2},
        yaxis2={
            "title": {"text": "documents"},
            "overlaying": "y",
            "side": "right",
            # at least 0-5, so a few documents get whole-number ticks (not 0.5 steps that ",d" shows as 0, 1, 1)
            "range": [0, max(5.0, float(documents.max()) * 1.1)],
            "showgrid": False,
            "tickformat": ",d",
        },
    )


def sla_source_figure(frame: pd.DataFrame, *, target: float) -> go.Figure:
    """On-time share per source (columns: source, documents, on time, share) against the target line."""
    shares = frame["share"].fillna(0)
    return _unvalidated(
        [
            {
                "type": "bar",
                "x": [chart_text(name) for name in frame["source"]],  # a source's name is untrusted
                "y": (frame["share"] * 100).to_numpy(dtype="float64"),
                "marker": {"color": [ON_TIME if s >= target else LATE for s in shares]},
                "text": [f"{v:.0%}" for v in shares],
                "textposition": "outside",
                "cliponaxis": False,
                "customdata": frame[["on time", "documents"]].to_numpy(),
                "hovertemplate": "%{x}: %{y:.1f}% on time (%{customdata[0]:,} of %{customdata[1]:,})"
                "<extra></extra>",
            }
        ],
        y_title="% of documents on time",
        xaxis={"type": "category"},
        yaxis={"range": [0, 105]},
        **target_line(target * 100, f"target {target:.0%}"),
    )


UNIT_WORDS = {"s": "seconds", "min": "minutes", "h": "hours"}
PER_HOUR = {"s": 3600.0, "min": 60.0, "h": 1.0}


def sla_percentiles_figure(
    frame: pd.DataFrame, *, target_hours: float, days: list[date], zone: str, unit: str = "h"
) -> go.Figure:
    """p50/p95/p99 processing times per day in `unit` (columns: day, p50 <unit>, ...; NaN on days without data,
    where the lines break) with the target line."""
    frame = frame.set_index("day").reindex(days).reset_index(names="day")
    x = [d.isoformat() for d in frame["day"]]
    columns = [f"p{n} {unit}" for n in (50, 95, 99)]
    target = target_hours * PER_HOUR[unit]
    # The target line only when it fits the chart's scale (4 h over seconds would flatten every line).
    slowest = float(frame[columns].max().max()) if frame[columns].notna().any().any() else 0.0
    line = target_line(target, f"target {target_hours:g} h") if unit == "h" or target <= 3 * slowest else {}
    return _unvalidated(
        [
            {
                "type": "scatter",
                "x": x,
                "y": frame[col].to_numpy(dtype="float64"),
                "mode": "lines+markers",
                "connectgaps": False,
                "name": col.split(" ")[0],
                "hovertemplate": f"%{{x|%Y-%m-%d}}: {col.split(' ')[0]} at most %{{y:.2f}} {unit}<extra></extra>",
            }
            for col in columns
        ],
        y_title=f"{UNIT_WORDS[unit]} from batch start to stored",
        xaxis=day_axis(days, zone),
        **line,
        showlegend=True,
    )


def sla_breaches_figure(frame: pd.DataFrame) -> go.Figure:
    """SLA alerts per source and level (columns: source, warning, critical), stacked."""
    sources = [chart_text(name) for name in frame["source"]]  # a source's name is untrusted
    return _unvalidated(
        [
            {
                "type": "bar",
                "x": sources,
                "y": frame["warning"].to_numpy(),
                "name": "warning",
                "marker": {"color": "#e0a800"},
            },
            {
                "type": "bar",
                "x": sources,
                "y": frame["critical"].to_numpy(),
                "name": "critical",
                "marker": {"color": LATE},
            },
        ],
        y_title="breaches",
        barmode="stack",
        showlegend=True,
    )


def backlog_figure(
    frame: pd.DataFrame, *, zone: str, since: datetime | None = None, until: datetime | None = None
) -> go.Figure:
    """Pending tasks per queue over time (columns: time, queue, backlog), times shown in `zone`, the x axis
    over the whole window (since, until) and the y axis in whole tasks (at least 0-5, so an idle queue does
    not get ticks of 0.2)."""
    fig = go.Figure()
    for queue, rows in frame.groupby("queue", sort=True):
        times = pd.to_datetime(rows["time"], utc=True).dt.tz_convert(zone)
        fig.add_trace(
            go.Scatter(
                x=times,
                y=rows["backlog"],
                mode="lines+markers",
                name=chart_text(queue),
                hovertemplate=f"%{{x|%Y-%m-%d %H:%M:%S}} ({zone}): %{{y:,d}} pending<extra>{chart_text(queue)}</extra>",
            )
        )
    xaxis: dict[str, Any] = {"type": "date", "tickformat": "%H:%M\n%b %d", "gridcolor": "#e6e9ef"}
    if since is not None and until is not None:
        xaxis["range"] = [pd.Timestamp(since).tz_convert(zone), pd.Timestamp(until).tz_convert(zone)]
    top = float(frame["backlog"].max()) if not frame.empty else 0.0
    return _layout(
        fig,
        height=280,
        x_title=f"time ({zone})",
        y_title="pending tasks",
        xaxis=xaxis,
        yaxis={"tickformat": ",d", "range": [0, max(5.0, top * 1.1)]},
        showlegend=True,
        # above the plot: below it, the two-line time ticks and the axis title ran into it
        legend={"orientation": "h", "x": 0, "y": 1.02, "xanchor": "left", "yanchor": "bottom"},
        margin={"l": 10, "r": 10, "t": 40, "b": 10},
    )
