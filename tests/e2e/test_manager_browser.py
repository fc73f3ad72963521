"""The manager's path in a real browser (Chromium, signed in through a real OpenID provider) against a running
`loreguard up`: SLA history no refresh can make today (batches started on past days, written to the stack's
database, then `loreguard sla rebuild`), read on the SLA page from the figure the browser holds: a 0% day, a
day without data and the documents per day; the batches that failed outright and a stale source that delivered
nothing, beside the share; then the breaches, the worst day per source and the weekly CSV.
The screenshot goes to test-output/e2e/ (people-manager-sla.png) with the other people's."""

from __future__ import annotations

import base64
import csv
import json
import math
import re
from collections import defaultdict
from dataclasses import dataclass
from datetime import UTC, date, datetime, time, timedelta
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from playwright.sync_api import Browser, expect

from core.vocabulary import ALERT_SLA_CRITICAL, ALERT_SLA_WARNING, ArtifactStatus, BatchStatus
from dashboard.charts import LATE, NO_DATA_STUB, ON_TIME
from data.db import make_engine, make_session_factory
from data.models import Alert, Artifact, Batch, Source
from tests.support.browser import OUTPUT, Provider, Stack, cli, metric, open_page, shoot, signed_in

pytestmark = [pytest.mark.browser, pytest.mark.temporal, pytest.mark.slow]

MANAGER = "mona.manager@example.org"
TARGET_HOURS = 4.0  # the stack's LOREGUARD_SLA_TARGET_HOURS (the default); the target share is 95%
# (source, batch status, days before today it started, start hour UTC, hours from its start to each stored
# document, documents that failed); a failed document counts as late.
HISTORY = [
    ("ledger", BatchStatus.COMPLETED, 6, 8, [0.5, 1.0, 2.0, 3.5], 0),  # 100% on time
    # 5 days ago: no batch at all
    ("ledger", BatchStatus.FAILED, 4, 9, [9.0], 2),  # 0% on time: one stored late, two failed
    ("archive", BatchStatus.COMPLETED, 2, 10, [1.0, 5.0], 0),  # 50%: below the target, but not 0%
    (
        "silent feed",
        BatchStatus.FAILED,
        3,
        7,
        [],
        0,
    ),  # failed at ingest: no document, the source delivered nothing
]
GOOD, NO_DATA, ZERO, HALF, SILENT = 6, 5, 4, 2, 3  # days before today
SILENT_SINCE = 4  # days ago "silent feed" was registered: hourly, so it is stale
# SLA alerts the monitor raised on the 0% day's batch as it ran (hours after its start), resolved as it ended
BREACHES = [(ALERT_SLA_WARNING, "warning", 4), (ALERT_SLA_CRITICAL, "critical", 8)]
# The figure of the first chart with a trace of this name, as the browser holds it (the chart element's `data`
# and `layout`): typed arrays as lists, NaN as null.
FIGURE = """(name) => {
  const plain = (_, v) => (ArrayBuffer.isView(v) ? Array.from(v, (n) => (Number.isFinite(n) ? n : null)) : v);
  for (const chart of document.querySelectorAll('.js-plotly-plot')) {
    if ((chart.data || []).some((trace) => trace.name === name)) {
      const {xaxis, yaxis, yaxis2, shapes} = chart.layout;
      return JSON.parse(JSON.stringify({data: chart.data, layout: {xaxis, yaxis, yaxis2, shapes}}, plain));
    }
  }
  return null;
}"""


@dataclass(frozen=True)
class Day:
    documents: int
    on_time: int
    failed: int


def expected_days(today: date) -> dict[date, Day]:
    """day -> documents, on time, failed: from HISTORY alone."""
    days: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, _, ago, _, hours, failed in HISTORY:
        counts = days[today - timedelta(days=ago)]
        counts[0] += len(hours) + failed
        counts[1] += sum(h <= TARGET_HOURS for h in hours)
        counts[2] += failed
    return {d: Day(*counts) for d, counts in days.items()}


def seed_history(database: Path, today: date) -> None:
    """HISTORY's sources, batches and documents, and the BREACHES, written to the stack's database."""
    engine = make_engine(f"sqlite:///{database}")
    try:
        with make_session_factory(engine).begin() as session:
            sources = {
                name: Source(name=name, kind="folder", location=f"/srv/{name}")
                for name in ("ledger", "archive", "silent feed")
            }
            sources["silent feed"].created_at = datetime.now(UTC) - timedelta(days=SILENT_SINCE)
            session.add_all(sources.values())
            session.flush()
            for n, (name, status, ago, hour, hours, failed) in enumerate(HISTORY):
                start = datetime.combine(today - timedelta(days=ago), time(hour), UTC)
                batch = Batch(
                    source_id=sources[name].id, workflow_id=f"sla-history-{n}", status=status,
                    total=len(hours) + failed, stored=len(hours), failed=failed, created_at=start,
                    started_at=start, ingested_at=start + timedelta(minutes=1),
                    finished_at=start + timedelta(hours=max(hours, default=0.1)),
                    error_type=None if hours else "SourceUnavailable",
                )  # fmt: skip
                session.add(batch)
                session.flush()
                for seq, h in enumerate(hours):
                    session.add(
                        Artifact(
                            batch_id=batch.id, source_id=batch.source_id, seq=seq, uri=f"file:///{n}/{seq}",
                            content_type="text/plain", status=ArtifactStatus.STORED,
                            stored_at=start + timedelta(hours=h),
                        )
                    )  # fmt: skip
                for seq in range(len(hours), len(hours) + failed):
                    session.add(
                        Artifact(
                            batch_id=batch.id, source_id=batch.source_id, seq=seq, uri=f"file:///{n}/{seq}",
                            content_type="text/plain", status=ArtifactStatus.FAILED, failed_stage="normalize",
                            error="undecodable bytes",
                        )
                    )  # fmt: skip
                if ago == ZERO:
                    session.add_all(
                        Alert(
                            batch_id=batch.id, kind=kind, level=level, message=f"batch {batch.id} is late",
                            created_at=start + timedelta(hours=after, minutes=5),
                            resolved_at=batch.finished_at,
                        )
                        for kind, level, after in BREACHES
                    )  # fmt: skip
    finally:
        engine.dispose()


def numbers(values: Any) -> list[float | None]:
    """A trace's y as numbers, None where there is no value (plotly may still hold a base64 typed array)."""
    if isinstance(values, dict) and "bdata" in values:
        values = np.frombuffer(base64.b64decode(values["bdata"]), dtype=np.dtype(values["dtype"])).tolist()
    return [None if v is None or (isinstance(v, float) and math.isnan(v)) else v for v in values]


def test_the_manager_reads_a_zero_day_and_a_no_data_day_on_the_sla_chart_and_exports_the_weeks(
    provider: Provider,
    signed_stack: Stack,
    browser: Browser,
) -> None:
    stack = signed_stack
    provider.person(MANAGER, name="Mona", groups=["manager"])
    seeded_today = datetime.now(UTC).date()
    seed_history(stack.database, seeded_today)
    # The rollups of past days, built as a person would: `loreguard sla rebuild`.
    assert json.loads(cli(stack)("sla", "rebuild", "--json"))["source_days"] == len(HISTORY)
    expected = expected_days(seeded_today)
    day = {ago: (seeded_today - timedelta(days=ago)).isoformat() for ago in (GOOD, NO_DATA, ZERO, HALF)}
    good, no_data, zero, half = day[GOOD], day[NO_DATA], day[ZERO], day[HALF]

    p = signed_in(browser, stack, MANAGER)
    p.get_by_text("Roles: manager").wait_for()
    open_page(p, stack.url + "/sla", "SLA")
    documents = sum(d.documents for d in expected.values())
    failed = sum(d.failed for d in expected.values())
    p.get_by_text(
        f"Documents in finished batches: {documents}; failed (counted late): {failed}. "
        "Batches failed outright: 2; cancelled: 0 (not counted in the share). "
        f"Breaches in window: {len(BREACHES)}; still open: 0."
    ).wait_for()
    # Beside the share: the batches that failed outright and the source that delivered nothing, said plainly.
    assert metric(p, "Batches failed outright") == "2"
    assert metric(p, "Sources that delivered nothing") == "1"
    p.get_by_text(
        "Not met: 2 batch(es) failed outright and 1 source(s) delivered nothing in this window (silent feed)."
    ).wait_for()
    stale = p.locator('[data-testid="stDataFrame"]', has=p.locator("th", has_text="why"))
    stale.get_by_text("silent feed", exact=True).wait_for(state="attached")
    stale.get_by_text(f"no document at all for {SILENT_SINCE} d", exact=False).wait_for(state="attached")
    p.get_by_role("heading", name="On time per day").wait_for()
    daily = p.locator(".js-plotly-plot", has_text="no data")  # its legend names the hatched columns
    daily.wait_for()

    # "On time per day", from the figure the browser drew.
    figure = p.evaluate(FIGURE, "no data")
    assert figure is not None
    traces = {t["name"]: t for t in figure["data"]}
    share = traces["on time"]
    today = date.fromisoformat(share["x"][-1])
    assert today in (seeded_today, seeded_today + timedelta(days=1))  # UTC midnight may pass meanwhile
    window = [today - timedelta(days=n) for n in range(29, -1, -1)]  # the default window: 30 days
    x = [d.isoformat() for d in window]
    assert share["x"] == x  # every day of the window, in order
    on_time = dict(zip(x, numbers(share["y"]), strict=True))
    assert on_time == {
        d.isoformat(): 100 * expected[d].on_time / expected[d].documents
        if d in expected and expected[d].documents
        else None
        for d in window
    }
    assert (on_time[good], on_time[no_data], on_time[zero], on_time[half]) == (100, None, 0, 50)
    # The 0% day is a red bar outlined and labelled "0%"; the 50% day is red, unlabelled; the 100% day green.
    labels = dict(zip(x, share["text"], strict=True))
    colors = dict(zip(x, share["marker"]["color"], strict=True))
    outline = dict(zip(x, share["marker"]["line"]["width"], strict=True))
    assert (labels[zero], colors[zero], outline[zero]) == ("0%", LATE, 2)
    assert (labels[half], colors[half], outline[half]) == ("", LATE, 0)
    assert (labels[good], colors[good], outline[good]) == ("", ON_TIME, 0)
    assert (labels[no_data], outline[no_data]) == ("", 0)
    assert [d for d, label in labels.items() if label] == [zero]
    # A day without documents is a low hatched stub instead (never a full bar), labelled "no data", or in red
    # "1 failed" on the day the silent feed's batch failed at ingest; the 0% day is not one.
    hatched = traces["no data"]
    empty = [d.isoformat() for d in window if d not in expected or not expected[d].documents]
    silent = (seeded_today - timedelta(days=SILENT)).isoformat()
    assert hatched["x"] == empty
    assert no_data in hatched["x"] and silent in hatched["x"] and zero not in hatched["x"]
    assert numbers(hatched["y"]) == [NO_DATA_STUB] * len(hatched["x"])
    stub_labels = dict(zip(hatched["x"], hatched["text"], strict=True))
    assert (stub_labels[no_data], stub_labels[silent]) == ("no data", "1 failed")
    assert hatched["marker"]["pattern"]["shape"] == "/"
    # The legend names both colours the bars take.
    assert share["showlegend"] is False  # its bars take both colours: the legend names each instead
    assert (traces["on time ≥ 95%"]["marker"]["color"], traces["below 95%"]["marker"]["color"]) == (
        ON_TIME,
        LATE,
    )
    # The documents per day, on the right-hand axis: the seeded counts, 0 on the other days.
    volume = traces["documents"]
    assert volume["yaxis"] == "y2" and volume["x"] == x
    counts = dict(zip(x, numbers(volume["y"]), strict=True))
    assert counts == {d.isoformat(): expected[d].documents if d in expected else 0 for d in window}
    assert (counts[good], counts[no_data], counts[zero], counts[half]) == (4, 0, 3, 2)
    axis = figure["layout"]["xaxis"]
    assert axis["type"] == "date" and axis["tickformat"] == "%b %d"  # days, not hours
    assert axis["range"][0] < x[0] and axis["range"][1] > x[-1]  # the whole window, half a day either side
    assert figure["layout"]["shapes"][0]["y0"] == pytest.approx(95)  # the target line
    # Drawn as such: the one "0%" label in the chart's SVG, and the hatching.
    expect(daily.locator("text.bartext", has_text=re.compile(r"^0%$"))).to_have_count(1)
    expect(daily.locator("pattern").first).to_be_attached()
    documents_axis = daily.locator("g.y2tick text").all_text_contents()  # whole numbers, each once
    assert documents_axis == [str(n) for n in sorted({int(t) for t in documents_axis})], documents_axis

    # On time per source, lowest first, each with its worst day: the cells of the table's grid (drawn on a
    # canvas; the grid keeps them in a table inside it, for assistive technology).
    grid = p.locator('[data-testid="stDataFrame"]', has=p.locator("th", has_text="worst day share"))
    grid.locator("tbody tr").nth(1).wait_for(state="attached")
    header = grid.locator("th").all_text_contents()
    sources = [
        dict(zip(header, row.locator("td").all_text_contents(), strict=True))
        for row in grid.locator("tbody tr").all()
    ]
    assert [
        (s["source"], s["documents"], s["on time"], s["late"], s["failed"], s["failed batches"])
        for s in sources
    ] == [
        ("archive", "2", "1", "1", "0", "0"),
        ("ledger", "7", "4", "1", "2", "1"),
        ("silent feed", "0", "0", "0", "0", "1"),
    ]
    assert [s["days below target"] for s in sources] == ["1", "1", "0"]
    assert [float(s["share"]) for s in sources[:2]] == pytest.approx([1 / 2, 4 / 7])
    assert [(s["worst day"], float(s["worst day share"])) for s in sources[:2]] == [(half, 0.5), (zero, 0)]
    # a source without a single document has no share and no worst day
    assert (sources[2]["share"], sources[2]["worst day"], sources[2]["worst day share"]) == ("", "", "")

    # Breaches per source and level: both on the ledger.
    breaches = p.evaluate(FIGURE, "critical")
    assert breaches is not None
    assert {t["name"]: (t["x"], numbers(t["y"])) for t in breaches["data"]} == {
        "warning": (["ledger"], [1]),
        "critical": (["ledger"], [1]),
    }
    shots = [shoot(p, "people-manager-sla")]

    # The weekly summary as a CSV: a row per week (its Monday) with documents, from the seed.
    weeks: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0, 0])
    failed_batches: dict[date, int] = defaultdict(int)
    for d, seen in expected.items():
        week = weeks[d - timedelta(days=d.weekday())]
        week[:3] = [week[0] + seen.documents, week[1] + seen.on_time, week[2] + seen.failed]
    for _, status, ago, _, _, _ in HISTORY:
        if status == BatchStatus.FAILED:
            started = seeded_today - timedelta(days=ago)
            failed_batches[started - timedelta(days=started.weekday())] += 1
    zero_day = date.fromisoformat(zero)
    weeks[zero_day - timedelta(days=zero_day.weekday())][3:] = [1, 1]  # the warning and the critical breach
    with p.expect_download() as downloading:
        p.get_by_role("button", name="Download CSV").click()
    download = downloading.value
    assert re.fullmatch(r"loreguard-sla-weekly-\d{8}\.csv", download.suggested_filename)
    rows = list(csv.DictReader(Path(download.path()).read_text().splitlines()))
    assert [row["week (UTC)"] for row in rows] == [
        w.isoformat() for w in sorted(weeks)
    ]  # labelled with its zone
    for row, (week, (n, ok, f, warning, critical)) in zip(rows, sorted(weeks.items()), strict=True):
        assert (int(row["documents"]), int(row["on time"]), int(row["failed"])) == (n, ok, f), week
        # shares as the page shows them; a week with a batch that failed outright did not meet the target
        assert row["share"] == (f"{ok / n:.1%}" if n else ""), week
        assert int(row["failed batches"]) == failed_batches[week], week
        assert row["met target"] == ("yes" if n and ok / n >= 0.95 and not failed_batches[week] else "no"), (
            week
        )
        assert (int(row["warning"]), int(row["critical"])) == (warning, critical), week
    p.context.close()
    print(f"\nscreenshots in {OUTPUT}: {', '.join(s.name for s in shots)}")
