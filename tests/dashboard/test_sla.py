"""The SLA page on seeded data: shares, percentiles, breaches, batches at risk and the weekly CSV, each checked
against figures this test computes itself from the seed (not from the page's SQL)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, date, datetime, timedelta

import pandas as pd
import pytest
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from core.vocabulary import (
    ARTIFACT_FAILED,
    ARTIFACT_INGESTED,
    ARTIFACT_STORED,
    BATCH_COMPLETED,
    BATCH_RUNNING,
)
from dashboard.sla_report import weekly_summary
from data.models import Alert, Artifact, Batch, Source
from tests.dashboard.conftest import APP, Downloads, plotly_figures, values

NOW = datetime.now(UTC).replace(microsecond=0)
DAY2 = datetime.combine(NOW.date() - timedelta(days=2), datetime.min.time(), UTC)
DAY1 = DAY2 + timedelta(days=1)
# (source, batch start, hours from start to stored per document); 4 h is the target (inclusive)
FINISHED = [
    ("alpha", DAY2 + timedelta(hours=8), [0.5, 1.0, 2.0, 3.5, 5.0]),
    ("beta", DAY1 + timedelta(hours=6), [0.25, 4.5, 6.0, 1.0]),
    ("alpha", DAY1 + timedelta(hours=9), [3.9, 4.0, 0.1]),
]
RUNNING_START = NOW - timedelta(hours=5)  # beta: 2 of 4 documents done in 5 h


def seed(sessions: sessionmaker[Session]) -> dict[str, int]:
    ids: dict[str, int] = {}
    with sessions.begin() as session:
        for name in ("alpha", "beta"):
            source = Source(name=name, kind="folder", location=f"/srv/{name}")
            session.add(source)
            session.flush()
            ids[name] = source.id
        batch_ids = []
        for n, (name, start, hours) in enumerate(FINISHED):
            batch = Batch(
                source_id=ids[name],
                status=BATCH_COMPLETED,
                created_at=start,
                started_at=start,
                finished_at=start + timedelta(hours=max(hours)),
                workflow_id=f"batch-{n}",
            )
            session.add(batch)
            session.flush()
            batch_ids.append(batch.id)
            for seq, h in enumerate(hours):
                session.add(
                    Artifact(
                        batch_id=batch.id, source_id=ids[name], seq=seq, uri=f"file:///{n}/{seq}",
                        content_type="text/plain", status=ARTIFACT_STORED, stored_at=start + timedelta(hours=h),
                    )
                )  # fmt: skip
            session.add(  # a failed document is not a stored one: not in the SLA figures
                Artifact(
                    batch_id=batch.id, source_id=ids[name], seq=len(hours), uri=f"file:///{n}/x",
                    content_type="text/plain", status=ARTIFACT_FAILED,
                )
            )  # fmt: skip
        running = Batch(
            source_id=ids["beta"], status=BATCH_RUNNING, created_at=RUNNING_START, started_at=RUNNING_START,
            workflow_id="batch-running",
        )  # fmt: skip
        session.add(running)
        session.flush()
        for seq in range(4):
            session.add(
                Artifact(
                    batch_id=running.id, source_id=ids["beta"], seq=seq, uri=f"file:///r/{seq}",
                    content_type="text/plain", status=ARTIFACT_FAILED if seq == 0 else
                    ARTIFACT_STORED if seq == 1 else ARTIFACT_INGESTED,
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
    return ids


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


def test_sla_page_figures_match_the_seed(sla_page: tuple[AppTest, dict[str, int]]) -> None:
    at, ids = sla_page
    # what the test expects, from the seed alone
    by_day: dict[date, list[float]] = defaultdict(list)
    by_source: dict[str, list[float]] = defaultdict(list)
    for name, start, hours in FINISHED:
        for h in hours:
            by_day[(start + timedelta(hours=h)).date()].append(h)
            by_source[name].append(h)
    by_day[(NOW - timedelta(hours=1)).date()].append(4.0)  # the running batch's stored document: 4 h
    by_source["beta"].append(4.0)
    all_hours = [h for hs in by_day.values() for h in hs]
    on_time = sum(h <= 4 for h in all_hours)

    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Documents stored"] == str(len(all_hours))
    assert metrics["Documents on time"] == f"{on_time / len(all_hours):.1%}"
    assert metrics["Batches at risk now"] == "1"

    figures = plotly_figures(at)
    daily = figures["sla_daily"]["data"][0]
    expected_days = sorted(by_day)
    assert [date.fromisoformat(d[:10]) for d in daily["x"]] == expected_days
    assert values(daily["y"]) == pytest.approx(
        [100 * sum(h <= 4 for h in by_day[d]) / len(by_day[d]) for d in expected_days]
    )
    sources = figures["sla_sources"]["data"][0]
    shown = dict(zip(sources["x"], values(sources["y"]), strict=True))
    assert shown == pytest.approx({n: 100 * sum(h <= 4 for h in hs) / len(hs) for n, hs in by_source.items()})
    assert figures["sla_daily"]["layout"]["shapes"][0]["y0"] == pytest.approx(95)  # the target line

    percentiles = frame_with(at, "p50 h", "p95 h", "p99 h")
    assert list(percentiles["day"]) == expected_days
    for _, row in percentiles.iterrows():
        hours = sorted(by_day[row["day"]])
        assert row["documents"] == len(hours)
        for p in (0.50, 0.95, 0.99):
            assert row[f"p{int(p * 100)} h"] == pytest.approx(nearest_rank(hours, p), abs=1e-4)

    breaches = frame_with(at, "warning", "critical", "open")
    assert breaches.to_dict("records") == [{"source": "beta", "warning": 2, "critical": 0, "open": 1}]

    risk = frame_with(at, "projected completion")
    (at_risk,) = risk.to_dict("records")
    assert (at_risk["batch"], at_risk["source"], at_risk["level"], at_risk["done"], at_risk["total"]) == (
        ids["running"], "beta", "warning", 2, 4,
    )  # fmt: skip
    assert at_risk["age h"] == pytest.approx(5.0, abs=0.05)
    # 2 done in 5 h: the 2 left take 5 h more
    expected = NOW + timedelta(hours=5)
    assert abs(at_risk["projected completion"].to_pydatetime() - expected) < timedelta(minutes=3)

    weekly = frame_with(at, "week", "met target")
    weeks: dict[date, list[float]] = defaultdict(list)
    for d, hs in by_day.items():
        weeks[d - timedelta(days=d.weekday())] += hs
    assert list(weekly["week"]) == sorted(weeks)
    assert list(weekly["documents"]) == [len(weeks[w]) for w in sorted(weeks)]
    assert list(weekly["share"]) == pytest.approx(
        [sum(h <= 4 for h in weeks[w]) / len(weeks[w]) for w in sorted(weeks)]
    )
    assert int(weekly["warning"].sum()) == 2 and int(weekly["critical"].sum()) == 0

    (download,) = at.get("download_button")
    assert download.proto.label == "Download CSV"


# What the seed puts on each UTC day: (day, documents stored, of them on time, SLA warnings raised). The
# running batch's stored document (4 h after its start: on time) and its open warning land on today's date
# (or yesterday's, just after midnight).
def seeded_days() -> list[tuple[date, int, int, int]]:
    return [
        (DAY2.date(), 5, 4, 0),  # alpha: 0.5, 1, 2, 3.5 h on time; 5 h late
        (DAY1.date(), 7, 5, 1),  # beta: 0.25, 1 h on time, 4.5, 6 h late; alpha 3.9, 4, 0.1 h on time
        ((NOW - timedelta(hours=1)).date(), 1, 1, 0),
        ((NOW - timedelta(minutes=55)).date(), 0, 0, 1),
    ]


def test_the_weekly_csv_download_serves_the_weekly_summary(
    dashboard_env: sessionmaker[Session], downloads: Downloads
) -> None:
    seed(dashboard_env)
    at = AppTest.from_file(str(APP), default_timeout=30)
    at.run()
    at.switch_page("../pages/sla.py").run()
    assert not at.exception, [e.value for e in at.exception]

    weeks: dict[date, list[int]] = defaultdict(lambda: [0, 0, 0])
    for day, documents, on_time, warnings in seeded_days():
        week = weeks[day - timedelta(days=day.weekday())]  # weeks start on Monday
        week[0] += documents
        week[1] += on_time
        week[2] += warnings
    lines = ["week,documents,on time,share,met target,warning,critical"]
    for week, (documents, on_time, warnings) in sorted(weeks.items()):
        share = on_time / documents if documents else None
        met = share is not None and share >= 0.95
        lines.append(
            f"{week},{documents},{on_time},{'' if share is None else repr(share)},{met},{warnings},0"
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
    assert any("No documents stored" in i.value for i in at.info)


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
            session, now=NOW, days=30, target_hours=4, target_share=0.95, warning_hours=4, critical_hours=8
        )
    hours = sorted([h for _, _, hs in FINISHED for h in hs] + [4.0])
    assert (r.documents, r.on_time) == (len(hours), sum(h <= 4 for h in hours))
    assert int(r.percentiles["documents"].sum()) == len(hours)
    assert r.breaches.to_dict("records") == [{"source": "beta", "warning": 2, "critical": 0, "open": 1}]
    assert list(r.at_risk["batch"]) == [ids["running"]] and list(r.at_risk["level"]) == ["warning"]
    assert int(r.weekly["documents"].sum()) == len(hours)
