"""The dashboard's memory: a Temporal-only dashboard never loads what only workers (or the hybrid) need.

Each page is rendered in a fresh Python process (imports are per process, so the other tests cannot mask one);
the parsers, the PDF reader, the language model and Celery cost the dashboard tens of megabytes it does not use
(bench/dashboard.py measures the peak RSS at a million documents).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys

import pytest
from sqlalchemy.orm import Session, sessionmaker

from tests.dashboard.conftest import APP

WORKER_ONLY = ["celery", "kombu", "billiard", "trafilatura", "lxml", "pypdf", "feedparser", "py3langid"]
PAGES = ["overview", "sources", "batches", "library", "document", "approvals", "sla", "audit", "workers"]

RENDER = """
import json, sys
from streamlit.testing.v1 import AppTest
loaded = {}
for page in sys.argv[2:]:
    at = AppTest.from_file(sys.argv[1], default_timeout=60)
    at.run()
    at.switch_page(f"../pages/{page}.py").run()
    problems = [e.value for e in at.exception]
    if problems:
        raise SystemExit(f"{page}: {problems}")
    loaded[page] = sorted({name.split(".")[0] for name in sys.modules})
print(json.dumps(loaded))
"""


@pytest.mark.parametrize("backend", ["temporal", "celery"])
def test_no_page_loads_the_workers_libraries(dashboard_env: sessionmaker[Session], backend: str) -> None:
    env = {**os.environ, "LOREGUARD_PROCESSING_BACKEND": backend}
    done = subprocess.run(
        [sys.executable, "-c", RENDER, str(APP), *PAGES],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    loaded: dict[str, list[str]] = json.loads(done.stdout.strip().splitlines()[-1])
    assert set(loaded) == set(PAGES)
    allowed = {"celery", "kombu", "billiard"} if backend == "celery" else set()
    for page, modules in loaded.items():
        unneeded = set(modules) & (set(WORKER_ONLY) - allowed)
        assert not unneeded, f"the {page} page loads {sorted(unneeded)}"
    if backend == "celery":  # the Workers page shows the Celery queue: then, and only then, Celery is loaded
        assert "celery" in loaded["workers"]
