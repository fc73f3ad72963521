"""bench/dashboard.py runs end to end on a small library, on SQLite and on PostgreSQL, and prints its figures
in the promised shape; the PostgreSQL scratch schema it creates is gone afterwards."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

from sqlalchemy import text

from data.db import make_engine
from tests.conftest import POSTGRES_URL, need, postgres_available

BENCH = Path(__file__).resolve().parents[2] / "bench" / "dashboard.py"
PAGES = (
    "Overview", "Sources", "Batches", "Batch detail", "Library", "Library search", "Document", "Approvals",
    "SLA", "Audit", "Workers",
)  # fmt: skip


def bench_schemas() -> set[str]:
    engine = make_engine(POSTGRES_URL)
    with engine.connect() as conn:
        found = set(conn.scalars(text("SELECT nspname FROM pg_namespace WHERE nspname LIKE 'lg_bench_%'")))
    engine.dispose()
    return found


def test_bench_prints_a_table_per_database_and_the_peak_rss() -> None:
    need(postgres_available(), f"PostgreSQL at {POSTGRES_URL}")
    before = bench_schemas()
    done = subprocess.run(
        [
            sys.executable, str(BENCH), "--artifacts", "3000", "--batches", "30", "--sources", "3", "--repeat", "1",
            "--no-temporal", "--database-url", "sqlite", "--database-url", POSTGRES_URL,
        ],
        capture_output=True,
        text=True,
        timeout=240,
    )  # fmt: skip
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    seeded = [line for line in lines if line.startswith("seeded ")]
    assert len(seeded) == 2 and all(
        s.startswith("seeded 3,000 artifacts, 30 batches, 3 sources") for s in seeded
    )
    tables = done.stdout.split("database: ")[3:]  # the two seeding headers first, then one per table
    assert [t.split()[0] for t in tables] == ["SQLite", "PostgreSQL"]
    for table in tables:
        for page in PAGES:
            assert re.search(
                rf"^{page} +render +\d+\.\d\d s +queries +\d+\.\d{{3}} s +dashboard peak RSS +\d+ MB$",
                table,
                re.M,
            ), page
        assert re.search(rf"^slowest page: ({'|'.join(PAGES)}) \d+\.\d\d s$", table, re.M)
        assert re.search(r"^dashboard peak RSS: \d+ MB \(the process that rendered", table, re.M)
    assert bench_schemas() == before  # the scratch schema was dropped
