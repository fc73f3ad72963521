"""The SLA page on seeded data: shares, percentiles, worst days, breaches, batches at risk and the weekly CSV,
each checked against figures this test computes itself from the seed (not from the page's SQL), with a day
at 0% on time and a day without data inside the window."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from core.vocabulary import ArtifactStatus, BatchStatus
from dashboard.sla_report import fitting_unit, percentiles_in, weekly_summary
from data import repository
from data.models import Alert, Artifact, Batch, Source
from tests.dashboard.conftest import (
    APP,
    Downloads,
    clear_streamlit_caches,
    plotly_figures,
    unescaped,
    values,
)

NOW = datetime.now(UTC).replace(microsecond=0)
TODAY = NOW.date()
DAY2 = datetime.combine(TODAY - timedelta(days=2), datetime.min.time(), UTC)
DAY1 = DAY2 + timedelta(days=1)
ZERO_DAY = DAY2 - timedelta(days=2)  # every document late or failed: 0% on time
NO_DATA_DAY = DAY2 - timedelta(days=1)  # no batch at all
# (source, status, batch start, hours from start to stored per document, failed documents); 4 h is the target
FINISHED = [
    ("alpha", BatchStatus.COMPLETED, DAY2 + timedelta(hours=8), [0.5, 1.0, 2.0, 3.5, 5.0], 1),
    ("beta", BatchStatus.COMPLETED, DAY1 + timedelta(hours=6), [0.25, 4.5, 6.0, 1.0], 1),
    ("alpha", BatchStatus.COMPLETED, DAY1 + timedelta(hours=9), [3.9, 4.0, 0.1], 1),
    ("beta", BatchStatus.FAILED, ZERO_DAY + timedelta(hours=2), [7.0], 3),
]
RUNNING_START = NOW - timedelta(hours=5)  # beta: 2 of 4 documents done in 5 h, not in the rollups yet


def seed(sessions: sessionmaker[Session], zone: str = "UTC") -> dict[str, int]:
    ids: dict[str, int] = {}
    with sessions.begin() as session:
        for name in ("alpha", "beta"):
            source = Source(name=name, kind="folder", location=f"/srv/{name}")
            session.add(source)
            session.flush()
            ids[name] = source.id
        batch_ids = []
        for n, (name, status, start, hours, failed) in enumerate(FINISHED):
            batch = Batch(
                source_id=ids[name], status=status, created_at=start, started_at=start,
                finished_at=start + timedelta(hours=max(hours)), workflow_id=f"batch-{n}",
            )  # fmt: skip
            session.add(batch)
            session.flush()
            batch_ids.append(batch.id)
            for seq, h in enumerate(hours):
                session.add(
                    Artifact(
                        batch_id=batch.id, source_id=ids[name], seq=seq, uri=f"file:///{n}/{seq}",
                        content_type="text/plain", status=ArtifactStatus.STORED, stored_at=start + timedelta(hours=h),
                    )
                )  # fmt: skip
            for extra in range(failed):  # a failed document counts as late
                session.add(
                    Artifact(
                        batch_id=batch.id, source_id=ids[name], seq=len(hours) + extra, uri=f"file:///{n}/x{extra}",
                        content_type="text/plain", status=ArtifactStatus.FAILED,
                    )
                )  # fmt: skip
        running = Batch(
            source_id=ids["beta"], status=BatchStatus.RUNNING, created_at=RUNNING_START, started_at=RUNNING_START,
            workflow_id="batch-running",
        )  # fmt: skip
        session.add(running)
        session.flush()
        for seq in range(4):
            session.add(
                Artifact(
                    batch_id=running.id, source_id=ids["beta"], seq=seq, uri=f"file:///r/{seq}",
                    content_type="text/plain", status=ArtifactStatus.FAILED if seq == 0 else
                    ArtifactStatus.STORED if seq == 1 else ArtifactStatus.INGESTED,
                    stored_at=NOW - timedelta(hours=1) if seq == 1 else None,
                )
            )  # fmt: skip
        ids["running"] = running.id
        for batch_id, kind, level, created, resolved in [
            (batch_ids[1], "sla_warning", "warning", DAY1 + timedelta(hours=10, minutes=5), True),
            (running.id, "sla_warning", "warning", NOW - timedelta(minutes=55), False),
            (running.id, "batch_failed:attempt-1", "error", NOW - timedelta(minutes=50), False),  # not SLA
        ]:
            session.add(
                Alert(
                    batch_id=batch_id, kind=kind, level=level, message="x", created_at=created,
                    resolved_at=created + timedelta(hours=1) if resolved else None,
                )
            )  # fmt: skip
        session.flush()
        for batch_id in batch_ids:  # what the worker's finish step does for each finished batch
            repository.roll_up_batch(session, batch_id=batch_id, target_hours=4.0, zone=zone)
    return ids


def expected_days() -> dict[date, tuple[int, int, int]]:
    """day -> (documents, on time, failed), from the seed alone."""
    days: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for _, _, start, hours, failed in FINISHED:
        day = days[start.date()]
        day[0] += len(hours) + failed
        day[1] += sum(h <= 4 for h in hours)
        day[2] += failed
    return {d: (n, ok, f) for d, (n, ok, f) in days.items()}


def upper_edge(hours: float) -> float:
    """The histogram bucket's upper edge (2^(k/8) s) holding a processing time, in hours."""
    seconds = hours * 3600
    k = 0 if seconds <= 1 else math.ceil(math.log2(seconds) * 8 - 1e-9)
    return 2 ** (k / 8) / 3600


def nearest_rank(sorted_values: list[float], p: float) -> float:
    return sorted_values[math.ceil(p * len(sorted_values)) - 1]


@pytest.fixture
def sla_page(dashboard_env: sessionmaker[Session]) -> tuple[AppTest, dict[str, int]]:
    ids = seed(dashboard_env)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.switch_page("../pages/sla.py").run()
    assert not at.exception, [e.value for e in at.exception]
    return at, ids


def frame_with(at: AppTest, *columns: str) -> pd.DataFrame:
    (found,) = [df.value for df in at.dataframe if set(columns) <= set(df.value.columns)]
    return found


def test_the_daily_chart_has_a_day_axis_a_zero_day_a_no_data_day_and_volume(
    sla_page: tuple[AppTest, dict[str, int]],
) -> None:
    at, _ = sla_page
    days = expected_days()
    window = [TODAY - timedelta(days=n) for n in range(29, -1, -1)]  # the default window: 30 days
    figure = plotly_figures(at)["sla_daily"]
    traces = {t["name"]: t for t in figure["data"]}

    share = traces["on time"]
    assert [date.fromisoformat(x) for x in share["x"]] == window  # every day of the window, in order
    shown = dict(zip(share["x"], values(share["y"]), strict=True))
    for day in window:
        if day in days:
            n, ok, _ = days[day]
            assert shown[day.isoformat()] == pytest.approx(100 * ok / n)
        else:
            assert math.isnan(shown[day.isoformat()])  # no bar: no data
    zero = ZERO_DAY.date().isoformat()
    assert shown[zero] == 0
    labels = dict(zip(share["x"], share["text"], strict=True))
    assert labels[zero] == "0%" and labels[DAY2.date().isoformat()] == ""  # 0% is labelled, not blank

    no_data = traces["no data"]  # the hatched columns: exactly the days without a finished batch
    assert set(no_data["x"]) == {d.isoformat() for d in window if d not in days}
    assert NO_DATA_DAY.date().isoformat() in no_data["x"] and zero not in no_data["x"]

    volume = traces["documents"]
    assert volume["yaxis"] == "y2"
    counts = dict(zip(volume["x"], values(volume["y"]), strict=True))
    assert {d: counts[d.isoformat()] for d in window} == {d: days.get(d, (0, 0, 0))[0] for d in window}

    axis = figure["layout"]["xaxis"]
    assert axis["type"] == "date" and axis["tickformat"] == "%b %d"  # day labels, never "23:59:59.9996"
    assert axis["range"][0] < window[0].isoformat() and axis["range"][1] > window[-1].isoformat()
    assert figure["layout"]["shapes"][0]["y0"] == pytest.approx(95)  # the target line


def test_percentile_lines_come_from_the_histogram_and_break_at_gaps(
    sla_page: tuple[AppTest, dict[str, int]],
) -> None:
    at, _ = sla_page
    stored: dict[date, list[float]] = defaultdict(list)
    for _, _, start, hours, _ in FINISHED:
        stored[start.date()] += hours
    figure = plotly_figures(at)["sla_percentiles"]
    for trace in figure["data"]:
        p = int(trace["name"].removeprefix("p")) / 100
        assert trace["connectgaps"] is False
        shown = dict(zip(trace["x"], values(trace["y"]), strict=True))
        assert math.isnan(shown[NO_DATA_DAY.date().isoformat()])  # the line breaks there
        for day, hours in stored.items():
            exact = nearest_rank(sorted(hours), p)
            assert shown[day.isoformat()] == pytest.approx(upper_edge(exact))
            assert exact <= shown[day.isoformat()] <= exact * 1.091  # an upper bound within 9%

    table = frame_with(at, "p50 h", "p95 h", "p99 h")
    assert list(table["day"]) == sorted(stored)
    assert list(table["documents"]) == [len(stored[d]) for d in sorted(stored)]


def test_headline_figures_and_plain_breach_labels(sla_page: tuple[AppTest, dict[str, int]]) -> None:
    at, ids = sla_page
    days = expected_days()
    documents = sum(n for n, _, _ in days.values())
    on_time = sum(ok for _, ok, _ in days.values())
    failed = sum(f for _, _, f in days.values())
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents in finished batches"] == str(documents)
    assert metrics["Documents on time"] == f"{on_time / documents:.1%}"
    assert metrics["Breaches in window"] == "2" and metrics["Breaches still open"] == "1"
    assert metrics["Batches at risk now"] == "1"
    captions = " ".join(unescaped(c.value) for c in at.caption)
    assert "Breaches in window: 2; still open: 1." in captions
    assert f"failed (counted late): {failed}" in captions

    breaches = frame_with(at, "warning", "critical", "open")
    assert breaches.to_dict("records") == [{"source": "beta", "warning": 2, "critical": 0, "open": 1}]

    risk = frame_with(at, "projected completion")
    (at_risk,) = risk.to_dict("records")
    assert (at_risk["batch"], at_risk["source"], at_risk["level"], at_risk["done"], at_risk["total"]) == (
        ids["running"], "beta", "warning", 2, 4,
    )  # fmt: skip
    # NOW was taken when the module was imported (minutes before this test in a full run): ages count from here
    age = (datetime.now(UTC) - RUNNING_START).total_seconds() / 3600
    assert at_risk["age h"] == pytest.approx(age, abs=0.05)
    # 2 of 4 done since RUNNING_START: the 2 left take as long again.
    expected = RUNNING_START + 2 * (datetime.now(UTC) - RUNNING_START)
    assert abs(at_risk["projected completion"].to_pydatetime() - expected) < timedelta(minutes=3)


def test_per_source_table_names_the_worst_days(sla_page: tuple[AppTest, dict[str, int]]) -> None:
    at, _ = sla_page
    table = frame_with(at, "source", "worst day", "days below target").set_index("source")
    # alpha: day 2 has 4 of 6 on time, day 1 has 3 of 4; beta: day 1 has 2 of 5, the zero day 0 of 4
    assert table.loc["alpha", "documents"] == 10 and table.loc["alpha", "on time"] == 7
    assert table.loc["alpha", "worst day"] == DAY2.date()
    assert table.loc["alpha", "worst day share"] == pytest.approx(4 / 6)
    assert table.loc["beta", "worst day"] == ZERO_DAY.date() and table.loc["beta", "worst day share"] == 0
    assert table.loc["beta", "failed"] == 4 and table.loc["beta", "days below target"] == 2
    assert list(table.index) == ["beta", "alpha"]  # the lowest share first
    shown = plotly_figures(at)["sla_sources"]["data"][0]
    assert dict(zip(shown["x"], values(shown["y"]), strict=True)) == pytest.approx(
        {"alpha": 70.0, "beta": 100 * 2 / 9}
    )


def test_the_weekly_csv_download_serves_the_weekly_summary(
    dashboard_env: sessionmaker[Session], downloads: Downloads
) -> None:
    seed(dashboard_env)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.switch_page("../pages/sla.py").run()
    assert not at.exception, [e.value for e in at.exception]

    weeks: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0, 0])
    for day, (documents, on_time, failed) in expected_days().items():
        week = weeks[day - timedelta(days=day.weekday())]  # weeks start on Monday
        week[0] += documents
        week[1] += on_time
        week[2] += failed
    for warned in (DAY1.date(), (NOW - timedelta(minutes=55)).date()):
        weeks[warned - timedelta(days=warned.weekday())][3] += 1
    failed_batches: dict[date, int] = defaultdict(int)
    for _, status, start, _, _ in FINISHED:
        if status == BatchStatus.FAILED:
            failed_batches[start.date() - timedelta(days=start.weekday())] += 1
    # as the page shows them: shares in percent, "met target" only without batches that failed outright
    lines = ["week (UTC),documents,on time,failed,failed batches,share,met target,warning,critical"]
    for week, (documents, on_time, failed, warnings) in sorted(weeks.items()):
        share = on_time / documents if documents else None
        met = share is not None and share >= 0.95 and not failed_batches[week]
        shown = "" if share is None else f"{share:.1%}"
        lines.append(
            f"{week},{documents},{on_time},{failed},{failed_batches[week]},{shown},"
            f"{'yes' if met else 'no'},{warnings},0"
        )

    served = downloads.served(at, "sla_csv")
    assert served.mimetype == "text/csv"
    assert served.file_name and served.file_name.startswith("loreguard-sla-weekly-")
    assert served.data.decode() == "\n".join(lines) + "\n"
    assert weekly_summary(pd.DataFrame(), pd.DataFrame(), 0.95).empty


def test_empty_library_renders(dashboard_env: sessionmaker[Session]) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.switch_page("../pages/sla.py").run()
    assert not at.exception
    assert any("No finished batch" in i.value for i in at.info)


def test_overview_links_open_sla_breaches_to_the_sla_page(dashboard_env: sessionmaker[Session]) -> None:
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    links = {(link.proto.label, link.proto.page) for link in at.page_link}
    assert ("SLA", "sla") in links


def test_sla_queries_agree_on_sqlite_and_postgresql(session_factory: sessionmaker[Session]) -> None:
    from dashboard.sla_report import sla_report

    ids = seed(session_factory)
    with session_factory() as session:
        r = sla_report(
            session,
            now=NOW,
            days=30,
            target_hours=4,
            target_share=0.95,
            warning_hours=4,
            critical_hours=8,
            zone="UTC",
        )
    days = expected_days()
    assert (r.documents, r.on_time, r.failed) == tuple(sum(v[i] for v in days.values()) for i in range(3))
    assert len(r.days) == 30 and r.days[-1] == TODAY
    assert int(r.percentiles["documents"].sum()) == sum(len(h) for _, _, _, h, _ in FINISHED)
    assert (r.breaches_in_window, r.breaches_open) == (2, 1)
    assert list(r.at_risk["batch"]) == [ids["running"]] and list(r.at_risk["level"]) == ["warning"]
    assert int(r.weekly["documents"].sum()) == r.documents
    assert not r.stale_target and not r.stale_zone


def test_days_are_calendar_days_of_the_configured_zone(session_factory: sessionmaker[Session]) -> None:
    """LOREGUARD_TIMEZONE decides which day a batch and a breach belong to, on SQLite and PostgreSQL alike:
    a batch started at 23:30 UTC is the next day's in Berlin, and a breach raised at 18:40 UTC is already
    tomorrow in Kolkata (UTC+05:30) while one at 18:20 UTC is not."""
    from dashboard.sla_report import SlaReport, breaches_by_day, sla_report

    now = datetime(2026, 1, 20, 12, 0, tzinfo=UTC)
    late_evening = datetime(2026, 1, 14, 23, 30, tzinfo=UTC)  # 2026-01-15 00:30 in Berlin (UTC+01:00)
    with session_factory.begin() as session:
        source = Source(name="gamma", kind="folder", location="/srv/gamma")
        session.add(source)
        session.flush()
        batch = Batch(
            source_id=source.id, status=BatchStatus.COMPLETED, created_at=late_evening, started_at=late_evening,
            finished_at=late_evening + timedelta(hours=1), workflow_id="batch-late",
        )  # fmt: skip
        session.add(batch)
        session.flush()
        for seq in range(3):
            session.add(
                Artifact(
                    batch_id=batch.id, source_id=source.id, seq=seq, uri=f"file:///late/{seq}",
                    content_type="text/plain", status=ArtifactStatus.STORED, stored_at=late_evening + timedelta(hours=1),
                )
            )  # fmt: skip
        for kind, created in (
            ("sla_warning", datetime(2026, 1, 16, 18, 20, tzinfo=UTC)),
            ("sla_critical", datetime(2026, 1, 16, 18, 40, tzinfo=UTC)),
        ):
            session.add(Alert(batch_id=batch.id, kind=kind, level=kind[4:], message="x", created_at=created))
        session.flush()
        repository.rebuild_sla_rollups(session, target_hours=4.0, zone="Europe/Berlin")

    def report(zone: str) -> SlaReport:
        with session_factory() as session:
            return sla_report(
                session, now=now, days=30, target_hours=4, target_share=0.95, warning_hours=4,
                critical_hours=8, zone=zone,
            )  # fmt: skip

    berlin = report("Europe/Berlin")
    per_day = dict(zip(berlin.daily["day"], berlin.daily["documents"], strict=True))
    assert per_day[date(2026, 1, 15)] == 3 and per_day[date(2026, 1, 14)] == 0
    assert berlin.days[-1] == date(2026, 1, 20) and not berlin.stale_zone
    # the same rollups read with another zone setting: the page must say the days are Berlin's
    assert report("UTC").stale_zone and report("UTC").rollup_zones == ["Europe/Berlin"]

    since = datetime(2026, 1, 1, tzinfo=UTC)
    with session_factory() as session:
        kolkata = breaches_by_day(session, since=since, zone="Asia/Kolkata")
        utc = breaches_by_day(session, since=since, zone="UTC")
    assert kolkata.to_dict("records") == [
        {"day": date(2026, 1, 16), "warning": 1, "critical": 0},  # 23:50 local
        {"day": date(2026, 1, 17), "warning": 0, "critical": 1},  # 00:10 local
    ]
    assert utc.to_dict("records") == [{"day": date(2026, 1, 16), "warning": 1, "critical": 1}]


def test_the_page_names_its_zone_and_warns_when_the_rollups_count_another(
    dashboard_env: sessionmaker[Session], downloads: Downloads, monkeypatch: pytest.MonkeyPatch
) -> None:
    seed(dashboard_env, zone="UTC")  # rolled up before the setting changed
    monkeypatch.setenv("LOREGUARD_TIMEZONE", "Europe/Berlin")
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.switch_page("../pages/sla.py").run()
    assert not at.exception, [e.value for e in at.exception]
    captions = " ".join(unescaped(c.value) for c in at.caption)
    assert "Days and weeks are calendar days in Europe/Berlin" in captions
    warnings = " ".join(w.value for w in at.warning)
    assert "another zone (UTC)" in warnings and "loreguard sla rebuild" in warnings
    figures = plotly_figures(at)
    for key in ("sla_daily", "sla_percentiles"):
        assert figures[key]["layout"]["xaxis"]["title"]["text"] == "day (Europe/Berlin)"
    served = downloads.served(at, "sla_csv").data.decode()
    assert served.startswith("week (Europe/Berlin),documents,")

    with dashboard_env.begin() as session:  # what `loreguard sla rebuild` does with the new setting
        repository.rebuild_sla_rollups(session, target_hours=4.0, zone="Europe/Berlin")
    clear_streamlit_caches()  # the page keeps its report for up to a minute
    clear = AppTest.from_file(str(APP), default_timeout=30)
    clear.run()
    clear.switch_page("../pages/sla.py").run()
    assert not any("another zone" in w.value for w in clear.warning)


def test_batches_that_failed_outright_and_sources_that_delivered_nothing_keep_the_page_from_looking_green(
    dashboard_env: sessionmaker[Session],
) -> None:
    seed(dashboard_env)
    failed_at = NOW - timedelta(days=1)
    with dashboard_env.begin() as session:  # gamma: registered 3 days ago, its one refresh failed at ingest
        gamma = Source(
            name="gamma", kind="feed", location="https://example.org/feed", created_at=NOW - timedelta(days=3)
        )
        session.add(gamma)
        session.flush()
        batch = Batch(
            source_id=gamma.id, status=BatchStatus.FAILED, created_at=failed_at, started_at=failed_at,
            finished_at=failed_at + timedelta(minutes=3), workflow_id="batch-gamma", error_type="SourceUnavailable",
        )  # fmt: skip
        session.add(batch)
        session.flush()
        repository.roll_up_batch(session, batch_id=batch.id, target_hours=4.0, zone="UTC")
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.switch_page("../pages/sla.py").run()
    assert not at.exception, [e.value for e in at.exception]

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Batches failed outright"] == "2"  # beta's on the 0% day, gamma's at ingest
    assert metrics["Sources that delivered nothing"] == "1"
    share = next(m for m in at.metric if m.label == "Documents on time")
    assert share.proto.color == share.proto.MetricColor.GRAY  # never green beside sources that are down
    (verdict,) = [unescaped(e.value) for e in at.error]
    assert verdict.startswith(
        "Not met: 2 batch(es) failed outright and 1 source(s) delivered nothing in this window (gamma)."
    )
    assert not at.success

    sources = frame_with(at, "source", "failed batches", "worst day").set_index("source")
    assert sources.loc["gamma", "documents"] == 0 and sources.loc["gamma", "failed batches"] == 1
    assert pd.isna(sources.loc["gamma", "worst day"])  # no worst day without a single document
    assert sources.loc["beta", "failed batches"] == 1 and sources.loc["alpha", "failed batches"] == 0

    stale = frame_with(at, "source", "why").set_index("source")
    assert stale.loc["gamma", "why"].startswith("no document at all for 3 d (it refreshes every 60 min")
    assert stale.loc["gamma", "last new document (UTC)"] == "never"  # not "None"
    weekly = frame_with(at, "failed batches", "met target")
    assert set(weekly.loc[weekly["failed batches"] > 0, "met target"]) == {"no"}


@pytest.mark.parametrize(
    ("slowest_seconds", "unit", "shown"),
    [(50, "s", 50.0), (40 * 60, "min", 40.0), (90, "s", 90.0), (150, "min", 2.5), (3 * 3600, "h", 3.0)],
)
def test_percentiles_read_in_the_unit_that_fits_the_slowest(
    slowest_seconds: float, unit: str, shown: float
) -> None:
    hours = slowest_seconds / 3600
    frame = pd.DataFrame(
        {"day": [TODAY], "documents": [3], "p50 h": [hours / 4], "p95 h": [hours / 2], "p99 h": [hours]}
    )
    assert fitting_unit(frame) == unit
    assert percentiles_in(frame, unit)[f"p99 {unit}"][0] == pytest.approx(shown)
