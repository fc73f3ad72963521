"""`loreguard refresh` as an operator runs it, against a real dev server and worker: a second refresh of an
unchanged folder reads nothing and says so, `--full` reads and processes everything again and is audited."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.devserver import DevServer
from data.db import make_engine, make_session_factory
from data.models import AuditEvent
from tests.support.incremental import write_files

pytestmark = [pytest.mark.temporal, pytest.mark.slow]

SCRIPT = Path(os.environ.get("LOREGUARD_TEST_CLI") or Path(sys.executable).with_name("loreguard"))
FILES = {
    f"memo-{i}.txt": f"Memo {i}\n\nThe security team patches the VPN gateways, round {i}.\n" for i in range(4)
}


def run(env: dict[str, str], cwd: Path, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([str(SCRIPT), *args], env=env, cwd=cwd, capture_output=True, text=True, timeout=180)


def test_refresh_is_incremental_and_full_reads_everything_again(
    tmp_path: Path, fresh_dev_server: DevServer
) -> None:
    folder = tmp_path / "memos"
    write_files(folder, FILES)
    env = {k: v for k, v in os.environ.items() if not k.startswith("LOREGUARD_")}
    env.update(
        LOREGUARD_STATE_DIR=str(tmp_path / "state"),
        LOREGUARD_DATABASE_URL=f"sqlite:///{tmp_path / 'loreguard.db'}",
        LOREGUARD_TEMPORAL_ADDRESS=fresh_dev_server.address,
        LOREGUARD_FOLDER_ROOTS=json.dumps([str(tmp_path)]),
        LOREGUARD_EVALUATOR="keywords",
        LOREGUARD_PROCESSING_PROCESSES="1",
        LOREGUARD_METRICS_PORT="0",
        LOREGUARD_HEALTH_PORT="0",
    )
    assert run(env, tmp_path, "setup").returncode == 0
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(SCRIPT), "worker"], env=env, cwd=tmp_path, stdout=out, stderr=subprocess.STDOUT
        )
    try:
        deadline = time.monotonic() + 60
        while "worker ready" not in log.read_text(errors="replace"):
            assert worker.poll() is None, f"the worker exited early:\n{log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, "the worker did not report ready within 60 s"
            time.sleep(0.1)
        assert (
            run(
                env, tmp_path, "source", "add", "memos", "--kind", "folder", "--location", str(folder)
            ).returncode
            == 0
        )

        first = run(env, tmp_path, "refresh", "memos", "--wait", "--json")
        assert first.returncode == 0, first.stderr
        assert json.loads(first.stdout)["stored"] == 4

        second = run(env, tmp_path, "refresh", "memos", "--wait")
        assert second.returncode == 0, second.stderr
        assert "0 documents, 0 stored, 0 failed, 4 unchanged (4 file(s) not read" in second.stdout

        full = run(env, tmp_path, "refresh", "memos", "--full", "--wait", "--json")
        assert full.returncode == 0, full.stderr
        outcome = json.loads(full.stdout)
        assert (outcome["full"], outcome["total"], outcome["stored"], outcome["unchanged"]) == (True, 4, 0, 4)
        assert outcome["recognised"] == 0
    finally:
        worker.send_signal(signal.SIGTERM)
        try:
            worker.wait(30)
        except subprocess.TimeoutExpired:
            worker.kill()
    engine = make_engine(env["LOREGUARD_DATABASE_URL"])
    try:
        with make_session_factory(engine)() as session:
            actions = session.scalars(select(AuditEvent.action).order_by(AuditEvent.id)).all()
    finally:
        engine.dispose()
    assert actions[-3:] == ["refresh", "refresh", "refresh_full"]
