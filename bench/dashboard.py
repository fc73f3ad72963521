"""Dashboard render times over a large library: every page's full render (AppTest) beside its raw queries.

    .venv/bin/python bench/dashboard.py --artifacts 1000000
    .venv/bin/python bench/dashboard.py --artifacts 1000000 --database-url sqlite \
        --database-url postgresql://postgres@127.0.0.1:5432/test

For each database (`--database-url`, repeatable; `sqlite`, the default, is a fresh SQLite file in a temp
folder; a PostgreSQL URL gets a scratch schema of the bench's own, dropped at the end), seeds it (migrated to
head, in a child process) with `--batches` batches over `--sources` sources holding `--artifacts` artifacts
spread over the last 30 days (with evaluations for the stored ones), builds the SLA rollups as
`loreguard sla rebuild` does, then renders each page with Streamlit's AppTest, cold (caches cleared), and
times the same page's SQL on its own. A Temporal dev server runs unless --no-temporal. Prints one table per
database ending with `slowest page: NAME X.XX s` and the peak RSS of the process that rendered its pages (one
process per database: a dashboard serves one).
"""

from __future__ import annotations

import argparse
import multiprocessing
import os
import random
import resource
import shutil
import sqlite3
import statistics
import sys
import tempfile
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import ExitStack
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

# Nothing heavy at the top: the render process (spawned, so it imports this module again) must hold only
# what a dashboard holds. Seeding and migrating import what they need in their own functions.

APP = ROOT / "dashboard" / "app.py"
SCRATCH = Path(tempfile.gettempdir()) / f"loreguard-bench-{os.getpid()}"  # removed at the end unless --keep
EXTRA_WORDS = ("quarterly", "report", "vendor", "review", "cloud", "network", "update", "budget")
LABELS = ("relevant", "review", "irrelevant")
LANGUAGES = ("en",) * 16 + ("de", "de", "fr", "es")
SPAN = timedelta(days=30)


def stamp(moment: datetime) -> str:
    """How SQLAlchemy stores a UTC datetime in SQLite."""
    return moment.astimezone(UTC).strftime("%Y-%m-%d %H:%M:%S.%f")


COLUMNS = {
    "sources": "id, name, kind, location, refresh_interval_seconds, paused, created_at, updated_at",
    "batches": "id, source_id, workflow_id, trigger, status, attempt, total, stored, failed, error_type,"
    " error_message, created_at, started_at, ingested_at, finished_at",
    "artifacts": "id, batch_id, source_id, seq, uri, content_type, status, failed_stage, error, language, text,"
    " title, word_count, ingest_ms, normalize_ms, extract_ms, clarify_ms, evaluate_ms, store_ms, ingested_at,"
    " processed_at, stored_at",
    "evaluations": "artifact_id, label, confidence, relevance, credibility, rationale, evaluator, created_at",
    "alerts": "batch_id, kind, level, message, created_at",
}


class SqliteRows:
    """Bulk inserts into a SQLite file (datetimes as SQLAlchemy stores them)."""

    def __init__(self, url: str) -> None:
        self.conn = sqlite3.connect(url.removeprefix("sqlite:///"))
        self.conn.execute("PRAGMA synchronous=OFF")
        self.conn.execute("PRAGMA cache_size=-100000")

    def write(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        marks = ", ".join("?" * len(rows[0]))
        converted = [tuple(stamp(v) if isinstance(v, datetime) else v for v in row) for row in rows]
        with self.conn:
            self.conn.executemany(f"INSERT INTO {table} ({COLUMNS[table]}) VALUES ({marks})", converted)

    def close(self) -> None:
        self.conn.close()


class PostgresRows:
    """COPY into PostgreSQL (the search vector is filled by the artifacts trigger); sequences and statistics
    brought up to date at the end, as a live database would have them."""

    def __init__(self, url: str) -> None:
        import psycopg

        self.conn = psycopg.connect(url.replace("postgresql+psycopg://", "postgresql://"), autocommit=True)

    def write(self, table: str, rows: list[tuple[Any, ...]]) -> None:
        with self.conn.cursor() as cur, cur.copy(f"COPY {table} ({COLUMNS[table]}) FROM STDIN") as copy:
            for row in rows:
                copy.write_row(row)

    def close(self) -> None:
        for table in ("sources", "batches", "artifacts", "evaluations", "alerts"):
            self.conn.execute(
                f"SELECT setval(pg_get_serial_sequence('{table}', 'id'), (SELECT max(id) FROM {table}))"
            )
        self.conn.execute("VACUUM ANALYZE")
        self.conn.close()


def seed(url: str, *, artifacts: int, batches: int, sources: int, seed_value: int = 11) -> None:
    rows = SqliteRows(url) if url.startswith("sqlite") else PostgresRows(url)
    for table, chunk in generate(
        artifacts=artifacts, batches=batches, sources=sources, seed_value=seed_value
    ):
        if chunk:
            rows.write(table, chunk)
    rows.close()


def generate(
    *, artifacts: int, batches: int, sources: int, seed_value: int
) -> Iterator[tuple[str, list[tuple[Any, ...]]]]:
    """(table, rows) in foreign-key order, in chunks small enough to keep the seeding process lean."""
    from core.errors import ErrorType
    from core.vocabulary import Stage
    from data.corpus import TOPIC_WORDS

    vocabulary = (*TOPIC_WORDS, *EXTRA_WORDS)
    rng = random.Random(seed_value)
    now = datetime.now(UTC)
    per_batch = max(1, artifacts // batches)
    yield (
        "sources",
        [
            (
                i,
                f"source-{i:03d}",
                "folder",
                f"/srv/library/source-{i:03d}",
                3600,
                False,
                now - SPAN,
                now - SPAN,
            )
            for i in range(1, sources + 1)
        ],
    )
    artifact_id = 0
    batch_rows: list[tuple[Any, ...]] = []
    artifact_rows: list[tuple[Any, ...]] = []
    evaluation_rows: list[tuple[Any, ...]] = []
    for batch_id in range(1, batches + 1):
        source_id = rng.randint(1, sources)
        started = now - SPAN * (batches - batch_id + 1) / batches
        count = per_batch + (1 if batch_id <= artifacts - per_batch * batches else 0)
        stored = failed = 0
        for seq in range(count):
            artifact_id += 1
            words = rng.choices(vocabulary, k=30)
            ok = rng.random() > 0.04
            done_at = started + timedelta(seconds=2 + seq * 0.05)
            title = " ".join(words[:6]).capitalize()
            artifact_rows.append(
                (
                    artifact_id,
                    batch_id,
                    source_id,
                    seq,
                    f"https://example.org/{source_id}/{batch_id}/{seq}.html",
                    "text/html",
                    "stored" if ok else "failed",
                    None if ok else Stage.NORMALIZE,
                    None if ok else "undecodable bytes: no text found",
                    rng.choice(LANGUAGES),
                    " ".join(words),
                    title,
                    len(words),
                    rng.uniform(1, 5),
                    rng.uniform(2, 20),
                    rng.uniform(1, 10),
                    rng.uniform(0.5, 3),
                    rng.uniform(5, 50),
                    rng.uniform(1, 4),
                    started,
                    done_at,
                    done_at if ok else None,
                )
            )
            if ok:
                stored += 1
                evaluation_rows.append(
                    (
                        artifact_id,
                        rng.choice(LABELS),
                        round(rng.uniform(0.4, 1.0), 3),
                        rng.random(),
                        rng.random(),
                        f"mentions {words[0]} and {words[1]}; relevance from topic matches",
                        "builtin",
                        done_at,
                    )
                )
            else:
                failed += 1
        recent = batch_id > batches - 2
        status = "running" if recent else ("awaiting_approval" if batch_id % 997 == 0 else "completed")
        finished = None if recent else started + timedelta(seconds=2 + count * 0.05)
        batch_rows.append(
            (
                batch_id,
                source_id,
                f"batch-{batch_id}-bench",
                "schedule",
                status,
                1,
                count,
                stored,
                failed,
                ErrorType.TOO_MANY_FAILURES if status == "awaiting_approval" else None,
                "too many documents failed" if status == "awaiting_approval" else None,
                started,
                started,
                started + timedelta(seconds=1),
                finished,
            )
        )
        if len(artifact_rows) >= 20_000 or batch_id == batches:
            yield "batches", batch_rows
            yield "artifacts", artifact_rows
            yield "evaluations", evaluation_rows
            batch_rows, artifact_rows, evaluation_rows = [], [], []
    yield (
        "alerts",
        [(b, "sla_warning", "warning", f"batch {b} is late", now) for b in (batches, batches - 1)],
    )


def prepare(url: str, args: argparse.Namespace) -> None:
    """Migrate, seed and roll up (run in a child process: its memory is not the dashboard's)."""
    from core.settings import Settings
    from data.db import make_engine, make_session_factory
    from data.migrate import upgrade
    from data.repository import rebuild_sla_rollups

    upgrade(url)
    started = time.perf_counter()
    seed(url, artifacts=args.artifacts, batches=args.batches, sources=args.sources)
    seeded = time.perf_counter() - started
    engine = make_engine(url)
    settings = Settings()
    started = time.perf_counter()
    with make_session_factory(engine).begin() as session:
        days = rebuild_sla_rollups(session, target_hours=settings.sla_target_hours, zone=settings.timezone)
    engine.dispose()
    print(
        f"seeded {args.artifacts:,} artifacts, {args.batches:,} batches, {args.sources} sources "
        f"in {seeded:.1f} s; SLA rollups of {days:,} source-days in {time.perf_counter() - started:.1f} s",
        flush=True,
    )


# --- timing ---------------------------------------------------------------------------------------------


def timed(fn: Callable[[], Any], repeat: int) -> float:
    """Median seconds of `repeat` runs."""
    times = []
    for _ in range(repeat):
        started = time.perf_counter()
        fn()
        times.append(time.perf_counter() - started)
    return statistics.median(times)


def page_queries(session_factory: Any, batch_id: int, document_id: int) -> dict[str, Callable[[], Any]]:
    """Each page's SQL with its default filters, as the page asks it (dashboard.queries via dashboard.views)."""
    from core.settings import Settings
    from dashboard import approvals, audit, metrics, queries
    from dashboard import library as lib
    from dashboard import sla_report as sla

    def overview() -> None:
        with session_factory() as s:
            now = datetime.now(UTC)
            queries.stored_since(s, since=now - timedelta(hours=1))
            queries.stored_since(s, since=now - timedelta(hours=24))
            queries.open_sla_breaches(s)
            queries.awaiting_approval(s)
            queries.throughput(s, until=now)

    def sources() -> None:
        with session_factory() as s:
            queries.source_summaries(s)

    def batches() -> None:
        with session_factory() as s:
            f = queries.BatchFilter()
            queries.source_options(s)
            queries.count_batches(s, f)
            queries.batch_page(s, f)

    def batch_detail() -> None:
        with session_factory() as s:
            queries.source_options(s)
            f = queries.BatchFilter()
            queries.count_batches(s, f)
            queries.batch_page(s, f)
            queries.batch_detail(s, batch_id=batch_id)
            queries.batch_progress(s, batch_id=batch_id)
            queries.artifact_counts(s, batch_id=batch_id)
            queries.stage_timings(s, batch_id=batch_id)
            queries.batch_artifacts(s, batch_id=batch_id)

    def library() -> None:
        with session_factory() as s:
            f = lib.LibraryFilter()
            queries.source_options(s)
            lib.library_labels(s)
            lib.library_languages(s)
            lib.library_count(s, f)
            lib.library_page(s, f)

    def library_search() -> None:
        with session_factory() as s:
            f = lib.LibraryFilter(search="ransomware phishing")
            queries.source_options(s)
            lib.library_labels(s)
            lib.library_languages(s)
            lib.library_count(s, f)
            lib.library_page(s, f)

    def document_page() -> None:
        from dashboard import documents

        with session_factory() as s:
            doc = documents.document(s, artifact_id=document_id)
            assert doc is not None
            documents.exact_duplicates(s, doc)
            documents.near_duplicates(s, doc)
            documents.sightings(s, doc)
            documents.document_text(s, artifact_id=document_id)

    def approvals_page() -> None:
        with session_factory() as s:
            approvals.waiting(s)
            approvals.recent_decisions(s)

    def sla_page() -> None:
        settings = Settings()
        with session_factory() as s:
            sla.sla_report(
                s,
                now=datetime.now(UTC),
                days=30,
                target_hours=settings.sla_target_hours,
                target_share=settings.sla_target_share,
                warning_hours=settings.sla_warning_hours,
                critical_hours=settings.sla_critical_hours,
                zone=settings.timezone,
            )

    def audit_page() -> None:
        with session_factory() as s:
            f = audit.AuditFilter()
            audit.options(s)
            audit.count(s, f)
            audit.page(s, f, limit=50)

    def workers_page() -> None:
        with session_factory() as s:
            metrics.from_database(s)

    return {
        "Overview": overview,
        "Sources": sources,
        "Batches": batches,
        "Batch detail": batch_detail,
        "Library": library,
        "Library search": library_search,
        "Document": document_page,
        "Approvals": approvals_page,
        "SLA": sla_page,
        "Audit": audit_page,
        "Workers": workers_page,
    }


def pages(batch_id: int, document_id: int) -> dict[str, tuple[str, dict[str, str]]]:
    """Page name -> (page script relative to dashboard/app.py, query parameters)."""
    return {
        "Overview": ("../pages/overview.py", {}),
        "Sources": ("../pages/sources.py", {}),
        "Batches": ("../pages/batches.py", {}),
        "Batch detail": ("../pages/batches.py", {"batch": str(batch_id)}),
        "Library": ("../pages/library.py", {}),
        "Library search": ("../pages/library.py", {"q": "ransomware phishing"}),
        "Document": ("../pages/document.py", {"doc": str(document_id)}),
        "Approvals": ("../pages/approvals.py", {}),
        "SLA": ("../pages/sla.py", {}),
        "Audit": ("../pages/audit.py", {}),
        "Workers": ("../pages/workers.py", {}),
    }


def render(page: str, params: dict[str, str]) -> float:
    """Seconds for one cold render of `page` (caches cleared), through the app's router."""
    import streamlit as st
    from streamlit.testing.v1 import AppTest

    at = AppTest.from_file(str(APP), default_timeout=120)
    at.run()
    st.cache_data.clear()
    for key, value in params.items():
        at.query_params[key] = value
    at.switch_page(page)
    started = time.perf_counter()
    at.run()
    elapsed = time.perf_counter() - started
    problems = [e.value for e in at.exception] + [e.value for e in at.error]
    if problems:
        raise SystemExit(f"{page} did not render cleanly: {problems}")
    return elapsed


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--artifacts", type=int, default=1_000_000)
    parser.add_argument("--batches", type=int, default=10_000)
    parser.add_argument("--sources", type=int, default=20)
    parser.add_argument("--repeat", type=int, default=3, help="renders per page; the median is printed")
    parser.add_argument(
        "--database-url",
        action="append",
        dest="databases",
        metavar="URL",
        help="`sqlite` (a fresh file, the default) or a PostgreSQL URL (a scratch schema is created and "
        "dropped in it); repeat to run several",
    )
    parser.add_argument("--db", type=Path, help="reuse or create this SQLite file instead of a fresh one")
    parser.add_argument("--no-temporal", action="store_true", help="do not start a Temporal dev server")
    parser.add_argument("--keep", action="store_true", help="keep the seeded databases (where is printed)")
    args = parser.parse_args(argv)
    try:
        return run(args)
    finally:
        if not args.keep:
            shutil.rmtree(SCRATCH, ignore_errors=True)


def run(args: argparse.Namespace) -> int:
    SCRATCH.mkdir(parents=True, exist_ok=True)
    for key in [k for k in os.environ if k.startswith("LOREGUARD_")]:
        del os.environ[key]
    os.environ["LOREGUARD_STATE_DIR"] = str(SCRATCH / "state")
    with TemporalServer(args.no_temporal), ExitStack() as stack:
        # every database is seeded before the first render: AppTest replaces __main__, which the spawned
        # seeding process needs to find `prepare`
        targets = [stack.enter_context(ScratchDatabase(d, args)) for d in args.databases or ["sqlite"]]
        for url, label, fresh in targets:
            print(f"database: {label}", flush=True)
            if fresh:
                child = multiprocessing.get_context("spawn").Process(target=prepare, args=(url, args))
                child.start()
                child.join()
                if child.exitcode != 0:
                    raise SystemExit(f"seeding {label} failed (exit status {child.exitcode})")
            else:
                from data.migrate import upgrade

                upgrade(url)
                print(f"reusing {label}")
        for url, label, _ in targets:
            print(f"database: {label}", flush=True)
            bench_pages(url, args)
    return 0


def peak_mb() -> float:
    """The peak resident memory of this process so far (Linux reports kilobytes)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def bench_pages(url: str, args: argparse.Namespace) -> float:
    """Render and time every page on the database at `url`; prints the table, returns the slowest render.

    The renders run in a process of their own (spawned: it imports only Streamlit, the app and what the pages
    import), so its peak RSS is that of a dashboard serving this database, not of the bench with its seeding
    and migration code or of a dashboard that served the other database first.
    """
    from sqlalchemy import text

    from data.db import make_engine, make_session_factory

    os.environ["LOREGUARD_DATABASE_URL"] = url
    batch_id = args.batches  # the newest batch, still running: the live detail with its workflow query
    engine = make_engine(url)
    sessions = make_session_factory(engine)
    with sessions() as session:  # the newest stored document: what a search opens first
        document_id = int(
            session.scalar(
                text("SELECT max(id) FROM artifacts WHERE status = 'stored' AND stored_at IS NOT NULL")
            )
        )
    query_fns = page_queries(sessions, batch_id, document_id)
    page_list = list(pages(batch_id, document_id).items())
    receive, send = multiprocessing.get_context("spawn").Pipe(duplex=False)
    child = multiprocessing.get_context("spawn").Process(
        target=render_pages, args=([(page, params) for _, (page, params) in page_list], args.repeat, send)
    )
    child.start()
    send.close()
    rendered: list[tuple[float, float]] = receive.recv()  # (median render s, peak RSS MB) per page
    child.join()
    if child.exitcode != 0:
        raise SystemExit(f"rendering failed (exit status {child.exitcode})")
    results: list[tuple[str, float, float]] = []
    for (name, _), (render_s, rss_mb) in zip(page_list, rendered, strict=True):
        query_s = timed(query_fns[name], args.repeat)
        results.append((name, render_s, query_s))
        print(
            f"{name:<16} render {render_s:6.2f} s   queries {query_s:6.3f} s   dashboard peak RSS {rss_mb:4.0f} MB",
            flush=True,
        )
    engine.dispose()
    name, render_s, _ = max(results, key=lambda r: r[1])
    print(f"slowest page: {name} {render_s:.2f} s", flush=True)
    print(
        f"dashboard peak RSS: {rendered[-1][1]:.0f} MB (the process that rendered every page above)",
        flush=True,
    )
    return render_s


def render_pages(page_list: list[tuple[str, dict[str, str]]], repeat: int, out: Any) -> None:
    """In the render process: each page's median cold render and the process's peak RSS after it."""
    rows = []
    for page, params in page_list:
        render_s = statistics.median(render(page, params) for _ in range(repeat))
        rows.append((render_s, peak_mb()))
    out.send(rows)
    out.close()
    sys.stdout.flush()
    os._exit(0)  # skip interpreter finalisation: the Temporal SDK can abort there (see DESIGN.md)


class ScratchDatabase:
    """(url, label, fresh) of the database to bench: a fresh SQLite file (or --db), or a scratch schema of
    its own in the given PostgreSQL database, dropped on exit unless --keep."""

    def __init__(self, database: str, args: argparse.Namespace) -> None:
        self.database, self.args = database, args
        self.schema: str | None = None
        self.admin: Any = None

    def __enter__(self) -> tuple[str, str, bool]:
        from sqlalchemy.engine import make_url

        if self.database == "sqlite":
            db = (self.args.db or SCRATCH / "bench.db").resolve()
            return f"sqlite:///{db}", f"SQLite {db}", not db.exists()
        from data.db import make_engine

        self.schema = f"lg_bench_{uuid.uuid4().hex[:10]}"
        self.admin = make_engine(self.database)
        with self.admin.begin() as conn:
            conn.exec_driver_sql(f'CREATE SCHEMA "{self.schema}"')
        sep = "&" if "?" in self.database else "?"
        url = f"{self.database}{sep}options=-csearch_path%3D{self.schema}"
        label = (
            f"PostgreSQL {make_url(self.database).render_as_string(hide_password=True)}, schema {self.schema}"
        )
        return url, label, True

    def __exit__(self, *exc: object) -> None:
        if self.admin is None:
            return
        if self.args.keep:
            print(f"schema kept: {self.schema}")
        else:
            with self.admin.begin() as conn:
                conn.exec_driver_sql(f'DROP SCHEMA "{self.schema}" CASCADE')
        self.admin.dispose()


class TemporalServer:
    """A Temporal dev server for the Overview's visibility figures, or an unused port when disabled."""

    def __init__(self, disabled: bool) -> None:
        self.disabled = disabled
        self.server: Any = None

    def __enter__(self) -> None:
        from cli.devserver import DevServer, free_port

        port = free_port()
        os.environ["LOREGUARD_TEMPORAL_ADDRESS"] = f"127.0.0.1:{port}"
        if self.disabled:
            print(f"Temporal: none (Overview shows it unavailable at 127.0.0.1:{port})")
            return
        self.server = DevServer(SCRATCH / "temporal" / "temporal.db", port=port, ui_port=None)
        self.server.start()
        print(f"Temporal dev server on {self.server.address}")

    def __exit__(self, *exc: object) -> None:
        if self.server is not None:
            self.server.stop()


if __name__ == "__main__":
    code = main()
    sys.stdout.flush()
    os._exit(code)  # skip interpreter finalisation: the Temporal SDK can abort there (see DESIGN.md)
