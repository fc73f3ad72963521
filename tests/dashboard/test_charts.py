"""The SLA charts are built without plotly's per-property validation (for speed); here each one, on data with a
0% day, a day without data and an empty frame, is rebuilt with validation on, so a misspelt or invalid property
fails a test instead of silently vanishing in the browser."""

from __future__ import annotations

import json
import math
from datetime import date, timedelta

import pandas as pd
import plotly.graph_objects as go
import plotly.io as pio
import pytest

from dashboard import charts
from dashboard.sla_report import DAY_COLUMNS

DAYS = [date(2026, 11, 1) + timedelta(days=n) for n in range(7)]


def daily() -> pd.DataFrame:
    rows = [(DAYS[1], 10, 10, 0, 0), (DAYS[3], 4, 0, 2, 2), (DAYS[4], 6, 3, 3, 0)]  # 100%, 0%, 50%
    frame = pd.DataFrame(rows, columns=["day", "documents", "on time", "late", "failed"])
    frame["share"] = frame["on time"] / frame["documents"]
    return frame[DAY_COLUMNS]


def figures(empty: bool) -> dict[str, go.Figure]:
    by_source = pd.DataFrame(
        [] if empty else [("alpha", 10, 10, 1.0), ("beta", 10, 3, 0.3)],
        columns=["source", "documents", "on time", "share"],
    )
    percentiles = pd.DataFrame(
        [] if empty else [(DAYS[1], 10, 0.5, 2.0, 3.5), (DAYS[4], 3, 1.0, 5.0, 6.0)],
        columns=["day", "documents", "p50 h", "p95 h", "p99 h"],
    )
    breaches = pd.DataFrame([] if empty else [("beta", 2, 1)], columns=["source", "warning", "critical"])
    frame = daily().iloc[0:0] if empty else daily()
    return {
        "daily": charts.sla_daily_figure(frame, target=0.95, days=DAYS, zone="Europe/Berlin"),
        "sources": charts.sla_source_figure(by_source, target=0.95),
        "percentiles": charts.sla_percentiles_figure(
            percentiles, target_hours=4, days=DAYS, zone="Europe/Berlin"
        ),
        "breaches": charts.sla_breaches_figure(breaches),
    }


@pytest.mark.parametrize("empty", [False, True], ids=["data", "empty"])
def test_every_sla_figure_is_valid_plotly(empty: bool) -> None:
    for name, fig in figures(empty).items():
        spec = fig.to_dict()
        go.Figure(spec)  # validation on: raises ValueError naming an invalid property
        sent = json.loads(pio.to_json(fig, validate=False))  # what st.plotly_chart sends the browser
        assert sent["layout"]["height"] > 0, name


def test_the_unvalidated_daily_figure_sends_what_the_browser_needs() -> None:
    fig = json.loads(pio.to_json(figures(empty=False)["daily"], validate=False))
    share, met, below, no_data, volume = fig["data"]
    # the legend names each colour the bars take (the share trace itself is not in it)
    assert share["showlegend"] is False
    assert (met["name"], met["marker"]["color"]) == ("on time ≥ 95%", charts.ON_TIME)
    assert (below["name"], below["marker"]["color"]) == ("below 95%", charts.LATE)
    # a day without data is a low labelled stub, never a full bar
    assert set(_numbers(no_data["y"])) == {charts.NO_DATA_STUB} and set(no_data["text"]) == {"no data"}
    shown = dict(zip(share["x"], _numbers(share["y"]), strict=True))
    assert shown[DAYS[3].isoformat()] == 0 and shown[DAYS[1].isoformat()] == 100
    assert math.isnan(shown[DAYS[0].isoformat()])  # no bar where there is no data
    assert share["text"][3] == "0%" and share["marker"]["line"]["width"][3] == 2
    assert no_data["x"] == [DAYS[n].isoformat() for n in (0, 2, 5, 6)]
    assert _numbers(volume["y"]) == [0, 10, 0, 4, 6, 0, 0] and volume["yaxis"] == "y2"
    assert fig["layout"]["xaxis"]["title"]["text"] == "day (Europe/Berlin)"
    assert fig["layout"]["shapes"][0]["y0"] == pytest.approx(95)


def _numbers(data: object) -> list[float]:
    from tests.dashboard.conftest import values

    return [math.nan if v is None else v for v in values(data)]
