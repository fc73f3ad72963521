"""Charts: pure functions from an aggregated DataFrame to a plotly figure (no queries, no Streamlit)."""

from __future__ import annotations

import pandas as pd
import plotly.graph_objects as go

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


def _layout(fig: go.Figure, *, height: int = 260, x_title: str = "", y_title: str = "") -> go.Figure:
    fig.update_layout(
        height=height,
        margin={"l": 10, "r": 10, "t": 10, "b": 10},
        xaxis_title=x_title,
        yaxis_title=y_title,
        showlegend=False,
        plot_bgcolor="white",
    )
    fig.update_yaxes(gridcolor="#e6e9ef", rangemode="tozero")
    return fig


def throughput_figure(frame: pd.DataFrame) -> go.Figure:
    """Documents stored per interval (columns: interval, documents)."""
    fig = go.Figure(
        go.Bar(
            x=frame["interval"],
            y=frame["documents"],
            marker_color=PRIMARY,
            hovertemplate="%{x|%Y-%m-%d %H:%M} UTC: %{y} documents<extra></extra>",
        )
    )
    return _layout(fig, y_title="documents stored")


def workflow_status_figure(frame: pd.DataFrame) -> go.Figure:
    """Workflows per execution status (columns: status, workflows)."""
    fig = go.Figure(
        go.Bar(
            x=frame["workflows"],
            y=frame["status"],
            orientation="h",
            marker_color=[STATUS_COLORS.get(s, PRIMARY) for s in frame["status"]],
            text=frame["workflows"],
            textposition="auto",
            textangle=0,
            hovertemplate="%{y}: %{x}<extra></extra>",
        )
    )
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, height=240, x_title="workflows")


def stage_timings_figure(frame: pd.DataFrame) -> go.Figure:
    """Mean milliseconds per pipeline stage (columns: stage, mean ms)."""
    fig = go.Figure(
        go.Bar(
            x=frame["stage"],
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


def sla_share_figure(frame: pd.DataFrame, *, x: str, target: float) -> go.Figure:
    """On-time share per `x` (a day or a source; column share, 0..1) against the target line."""
    colors = [ON_TIME if s >= target else LATE for s in frame["share"].fillna(0)]
    fig = go.Figure(
        go.Bar(
            x=frame[x],
            y=frame["share"] * 100,
            marker_color=colors,
            customdata=frame[["on time", "documents"]],
            hovertemplate="%{x}: %{y:.1f}% on time (%{customdata[0]} of %{customdata[1]})<extra></extra>",
        )
    )
    fig.add_hline(y=target * 100, line_dash="dash", line_color="#333", annotation_text=f"target {target:.0%}")
    fig.update_yaxes(range=[0, 100])
    return _layout(fig, y_title="% of documents on time")


def sla_percentiles_figure(frame: pd.DataFrame, *, target_hours: float) -> go.Figure:
    """p50/p95/p99 processing hours per day (columns: day, p50 h, p95 h, p99 h) with the target line."""
    fig = go.Figure(
        [
            go.Scatter(
                x=frame["day"],
                y=frame[col],
                mode="lines+markers",
                name=col.removesuffix(" h"),
                hovertemplate=f"%{{x}}: {col.removesuffix(' h')} %{{y:.2f}} h<extra></extra>",
            )
            for col in ("p50 h", "p95 h", "p99 h")
        ]
    )
    fig.add_hline(
        y=target_hours, line_dash="dash", line_color="#333", annotation_text=f"target {target_hours:g} h"
    )
    fig = _layout(fig, y_title="hours from batch start to stored")
    fig.update_layout(showlegend=True)
    return fig


def sla_breaches_figure(frame: pd.DataFrame) -> go.Figure:
    """SLA alerts per source and level (columns: source, warning, critical), stacked."""
    fig = go.Figure(
        [
            go.Bar(x=frame["source"], y=frame["warning"], name="warning", marker_color="#e0a800"),
            go.Bar(x=frame["source"], y=frame["critical"], name="critical", marker_color=LATE),
        ]
    )
    fig = _layout(fig, y_title="breaches")
    fig.update_layout(barmode="stack", showlegend=True)
    return fig
