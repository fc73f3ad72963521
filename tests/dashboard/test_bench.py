"""bench/dashboard.py runs end to end on a small library and prints its figures in the promised shape."""

from __future__ import annotations

import re
import subprocess
import sys
from pathlib import Path

BENCH = Path(__file__).resolve().parents[2] / "bench" / "dashboard.py"
PAGES = ("Overview", "Sources", "Batches", "Batch detail", "Library", "Library search")


def test_bench_prints_render_and_query_times_per_page() -> None:
    done = subprocess.run(
        [
            sys.executable,
            str(BENCH),
            "--artifacts",
            "3000",
            "--batches",
            "30",
            "--sources",
            "3",
            "--repeat",
            "1",
            "--no-temporal",
        ],
        capture_output=True,
        text=True,
        timeout=180,
    )
    assert done.returncode == 0, done.stdout + done.stderr
    lines = done.stdout.strip().splitlines()
    assert lines[0].startswith("seeded 3,000 artifacts, 30 batches, 3 sources")
    for page in PAGES:
        assert any(
            re.fullmatch(rf"{page} +render +\d+\.\d\d s +queries +\d+\.\d{{3}} s", line) for line in lines
        ), page
    assert re.fullmatch(
        r"slowest page: (Overview|Sources|Batches|Batch detail|Library|Library search) \d+\.\d\d s", lines[-1]
    )
