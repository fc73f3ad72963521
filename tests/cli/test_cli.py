"""The `loreguard` command as operators and scripts use it, judged by exit status and output: through the CLI's
entry function in this process (tests/support/cli.py), and as the console script where the process matters."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time
from datetime import datetime
from pathlib import Path

import pytest
from sqlalchemy import select

from cli.devserver import free_port
from cli.main import run
from core.vocabulary import BatchStatus
from data import repository
from data.db import make_engine, make_session_factory
from data.models import AuditEvent
from tests.support.cli import ME, SAMPLES, SCRIPT, Loreguard, cli_env

# --- source add / list -----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--kind", "archive", "--location", "/tmp"], "Invalid value for '--kind'"),
        (["--kind", "folder", "--location", "/no/such/folder"], "is outside the folders sources may read"),
        (["--kind", "feed", "--location", "ftp://example.org/feed.xml"], "is not an http(s) URL"),
        (["--kind", "web", "--location", "example.org/page"], "is not an http(s) URL"),
        (["--kind", "web", "--location", "http://169.254.169.254/latest/meta-data/"], "a link-local address"),
        (["--kind", "feed", "--location", "http://[::ffff:10.0.0.7]/feed.xml"], "a private address"),
        (["--kind", "folder", "--location", str(SAMPLES), "--interval", "5"], "--interval"),
    ],
    ids=[
        "bad-kind",
        "folder-outside-roots",
        "ftp-feed",
        "schemeless-web",
        "metadata-address",
        "mapped-private-address",
        "short-interval",
    ],
)
def test_source_add_refuses_bad_input_and_writes_nothing(
    loreguard: Loreguard, args: list[str], message: str
) -> None:
    before = loreguard.counts()

    result = loreguard("source", "add", "news", *args)

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert result.stdout == ""
    assert loreguard.counts() == before


@pytest.mark.parametrize(
    ("name", "message"),
    [
        ("x" * 201, "Name: at most 200 characters (got 201)."),
        (
            "news\x1b[31mred",
            "Name: no control characters such as tabs, line breaks or escapes (found '\\x1b').",
        ),
        ("news\tdesk", "Name: no control characters such as tabs, line breaks or escapes (found '\\t')."),
        ("2024", "Name: not only digits: commands take a source's id or its name, so add a letter."),
    ],
    ids=["too-long", "escape", "tab", "digits"],
)
def test_source_add_refuses_a_bad_name_with_the_operations_message(
    loreguard: Loreguard, name: str, message: str
) -> None:
    before = loreguard.counts()

    result = loreguard("source", "add", name, "--kind", "folder", "--location", str(SAMPLES))

    assert result.returncode == 2
    assert message in result.stderr
    assert "Traceback" not in result.stderr
    assert loreguard.counts() == before


def test_source_add_refuses_a_duplicate_name(loreguard: Loreguard) -> None:
    loreguard.ok("source", "add", "samples", "--kind", "folder", "--location", str(SAMPLES))
    before = loreguard.counts()

    result = loreguard("source", "add", "samples", "--kind", "web", "--location", "https://example.org/")

    assert result.returncode == 2
    assert "a source named 'samples' already exists" in result.stderr
    assert len(result.stderr.strip().splitlines()) == 1
    assert loreguard.counts() == before


def test_source_add_records_and_lists_sources_as_json(loreguard: Loreguard, tmp_path: Path) -> None:
    folder = tmp_path / "notes"
    folder.mkdir()
    added = loreguard.ok(
        "source", "add", "notes", "--kind", "folder", "--location", "notes", "--interval", "600", "--json"
    )
    loreguard.ok("source", "add", "advisories", "--kind", "feed", "--location", "https://example.org/rss.xml")

    assert json.loads(added.stdout)["name"] == "notes"
    listed = json.loads(loreguard.ok("source", "list", "--json").stdout)
    assert [s["name"] for s in listed] == ["advisories", "notes"]
    notes = listed[1]
    assert set(notes) >= {"id", "name", "kind", "location", "refresh_interval_seconds", "paused", "batches"}
    assert notes["kind"] == "folder"
    assert notes["location"] == str(folder.resolve())  # relative paths are stored absolute
    assert notes["refresh_interval_seconds"] == 600
    assert notes["batches"] == 0 and notes["last_refresh"] is None

    engine = make_engine(loreguard.db_url)
    with make_session_factory(engine)() as session:
        actors = session.scalars(select(AuditEvent.actor).where(AuditEvent.action == "add_source")).all()
    engine.dispose()
    assert actors == [ME, ME]  # the OS user who ran the commands

    table = loreguard.ok("source", "list").stdout
    assert "advisories" in table and "notes" in table


# Names anyone may put in the environment: the audit log must not believe them.
FORGED = {"LOGNAME": "system", "USER": "system", "LNAME": "system", "USERNAME": "ada.admin@example.org"}


def audit_actors(db_url: str, action: str) -> list[str]:
    engine = make_engine(db_url)
    try:
        with make_session_factory(engine)() as session:
            return list(session.scalars(select(AuditEvent.actor).where(AuditEvent.action == action)))
    finally:
        engine.dispose()


def test_the_audit_names_the_account_of_the_process_not_its_environment(
    loreguard: Loreguard, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    (tmp_path / "a").mkdir()
    (tmp_path / "b").mkdir()
    loreguard.env.update(FORGED)
    done = loreguard.process("source", "add", "a", "--kind", "folder", "--location", "a")  # a real process
    assert done.returncode == 0, done.stderr

    for key in [k for k in os.environ if k.startswith("LOREGUARD_") and k not in loreguard.env]:
        monkeypatch.delenv(key)
    for key, value in loreguard.env.items():  # the CLI's entry function, in this process
        monkeypatch.setenv(key, value)
    monkeypatch.chdir(tmp_path)
    assert run(["source", "add", "b", "--kind", "folder", "--location", "b"]) == 0

    assert audit_actors(loreguard.db_url, "add_source") == [ME, ME]
    assert ME not in FORGED.values()


@pytest.mark.parametrize("actor", ["ana\nmallory approve batch:1", "ana\rx", "ana\x1b[2Jx", "ana\u2028x"])
def test_actor_refuses_control_characters(loreguard: Loreguard, tmp_path: Path, actor: str) -> None:
    result = loreguard("approve", "1", "--actor", actor)

    assert result.returncode == 2, result.stderr
    assert "--actor" in result.stderr and "control character" in result.stderr
    assert loreguard.counts()[1] == 0  # nothing audited, no line forged


def test_commands_need_a_migrated_database(tmp_path: Path) -> None:
    fresh = Loreguard(tmp_path, cli_env(tmp_path, f"127.0.0.1:{free_port()}"))

    result = fresh.process("source", "list")  # the console script's own exit status

    assert result.returncode == 1
    assert "loreguard migrate" in result.stderr
    assert not (tmp_path / "loreguard.db").exists()  # reading did not create an empty database


# --- batches ---------------------------------------------------------------------------------------------


def test_batches_json_lists_newest_first_with_filters(loreguard: Loreguard) -> None:
    engine = make_engine(loreguard.db_url)
    with make_session_factory(engine).begin() as session:
        first = repository.create_source(session, name="first", kind="web", location="https://a.example/")
        second = repository.create_source(session, name="second", kind="web", location="https://b.example/")
        done = repository.create_batch(session, source_id=first.id)
        repository.finish_batch(session, batch_id=done.id, status=BatchStatus.COMPLETED)
        failed = repository.create_batch(session, source_id=second.id)
        repository.finish_batch(
            session,
            batch_id=failed.id,
            status=BatchStatus.FAILED,
            error_type="InvalidSource",
            error_message="gone",
        )
    engine.dispose()

    rows = json.loads(loreguard.ok("batches", "--json").stdout)

    assert [r["source_name"] for r in rows] == ["second", "first"]
    keys = {"id", "source_id", "source_name", "status", "trigger", "total", "stored", "failed"}
    assert keys | {"created_at", "finished_at", "error_type", "error_message", "workflow_id"} <= set(rows[0])
    assert datetime.fromisoformat(rows[0]["created_at"]).tzinfo is not None
    assert rows[0]["error_type"] == "InvalidSource"
    only_failed = json.loads(loreguard.ok("batches", "--status", "failed", "--json").stdout)
    assert [r["id"] for r in only_failed] == [rows[0]["id"]]
    by_name = json.loads(loreguard.ok("batches", "--source", "first", "--json").stdout)
    assert [r["source_name"] for r in by_name] == ["first"]
    assert len(json.loads(loreguard.ok("batches", "--limit", "1", "--json").stdout)) == 1
    assert "second" in loreguard.ok("batches").stdout
    assert {"unchanged", "skipped"} <= set(rows[0])

    unknown = loreguard("batches", "--source", "nowhere")
    assert unknown.returncode == 2 and "nowhere" in unknown.stderr
    bad_status = loreguard("batches", "--status", "done")
    assert bad_status.returncode == 2


def test_batches_show_the_unchanged_and_skipped_counts(loreguard: Loreguard) -> None:
    engine = make_engine(loreguard.db_url)
    with make_session_factory(engine).begin() as session:
        source = repository.create_source(session, name="big", kind="web", location="https://a.example/")
        batch = repository.create_batch(session, source_id=source.id)
        batch.status, batch.total, batch.stored, batch.unchanged, batch.skipped = (
            BatchStatus.COMPLETED,
            9,
            2,
            7,
            41,
        )
    engine.dispose()

    (row,) = json.loads(loreguard.ok("batches", "--json").stdout)
    assert (row["total"], row["stored"], row["unchanged"], row["skipped"]) == (9, 2, 7, 41)
    table = loreguard.ok("batches").stdout
    assert "unchanged" in table and "skipped" in table
    line = next(line for line in table.splitlines() if " big " in line)
    cells = [cell.strip() for cell in line.split("│") if cell.strip()]
    assert cells[4:9] == ["9", "2", "0", "7", "41"]  # total, stored, failed, unchanged, skipped


def test_batches_json_is_an_empty_list_when_there_are_none(loreguard: Loreguard) -> None:
    assert json.loads(loreguard.ok("batches", "--json").stdout) == []


# --- refresh and worker ----------------------------------------------------------------------------------


def test_refresh_names_the_unreachable_temporal_address_and_writes_no_batch(loreguard: Loreguard) -> None:
    loreguard.ok("source", "add", "samples", "--kind", "folder", "--location", str(SAMPLES))
    address = loreguard.env["LOREGUARD_TEMPORAL_ADDRESS"]

    result = loreguard("refresh", "samples")

    assert result.returncode == 1
    assert address in result.stderr and "loreguard up" in result.stderr
    assert "Traceback" not in result.stderr
    assert loreguard.counts()[2] == 0


def test_refresh_of_an_unknown_source_is_a_usage_error(loreguard: Loreguard) -> None:
    result = loreguard("refresh", "nowhere")
    assert result.returncode == 2
    assert "nowhere" in result.stderr


def test_worker_refuses_an_unknown_queue(loreguard: Loreguard) -> None:
    result = loreguard("worker", "--queue", "loreguard-everything")
    assert result.returncode == 2
    assert "loreguard-everything" in result.stderr and "loreguard-ingestion" in result.stderr


@pytest.mark.slow
@pytest.mark.temporal
def test_client_commands_exit_with_their_own_status_every_time(with_temporal: Loreguard) -> None:
    """The SDK's shutdown race (exit 134 after the work is done) must never leak into the exit status."""
    started: list[int] = []
    for attempt in range(10):  # a source of its own each time: one batch per source may be in flight
        name = f"samples-{attempt}"
        with_temporal.ok("source", "add", name, "--kind", "folder", "--location", str(SAMPLES))
        refresh = with_temporal.process(
            "refresh", name, "--json"
        )  # a Temporal client in a process of its own
        assert refresh.returncode == 0, f"attempt {attempt}: {refresh.returncode}\n{refresh.stderr}"
        outcome = json.loads(refresh.stdout)
        assert outcome["workflow_id"] and outcome["source"] == name
        started.append(outcome["batch_id"])

        listed = with_temporal("batches", "--json", "--limit", "100")
        assert listed.returncode == 0, f"attempt {attempt}: {listed.returncode}\n{listed.stderr}"
        assert [row["id"] for row in json.loads(listed.stdout)] == started[::-1]

    # Its batch is still in flight (no worker runs here).
    again = with_temporal.process("refresh", "samples-0")
    assert again.returncode != 0 and f"already has batch {started[0]} in flight" in again.stderr
    with_temporal.ok("source", "add", "people", "--kind", "folder", "--location", str(SAMPLES))
    people = with_temporal.process("refresh", "people")
    assert people.returncode == 0
    assert "batch" in people.stdout and "workflow" in people.stdout


@pytest.mark.slow
@pytest.mark.temporal
def test_refresh_wait_reports_totals_from_a_running_worker(with_temporal: Loreguard, tmp_path: Path) -> None:
    log = tmp_path / "worker.log"
    with log.open("wb") as out:
        worker = subprocess.Popen(
            [str(SCRIPT), "worker"],
            env={**with_temporal.env, "LOREGUARD_PROCESSING_PROCESSES": "1"},
            cwd=tmp_path,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 60
        while "worker ready" not in log.read_text(errors="replace"):
            assert worker.poll() is None, f"the worker exited early:\n{log.read_text(errors='replace')}"
            assert time.monotonic() < deadline, "the worker did not report ready within 60 s"
            time.sleep(0.1)
        with_temporal.ok("source", "add", "samples", "--kind", "folder", "--location", str(SAMPLES))

        result = with_temporal("refresh", "samples", "--wait", "--json")

        assert result.returncode == 0, result.stderr
        outcome = json.loads(result.stdout)
        assert outcome["status"] == BatchStatus.COMPLETED
        assert outcome["stored"] > 0
        assert outcome["total"] == outcome["stored"] + outcome["failed"]

        gone = tmp_path / "gone"
        gone.mkdir()
        with_temporal.ok("source", "add", "gone", "--kind", "folder", "--location", str(gone))
        gone.rmdir()
        failed = with_temporal("refresh", "gone", "--wait", timeout=60)
        assert failed.returncode == 1, failed.stdout + failed.stderr
        assert "InvalidSource" in failed.stdout and "does not exist" in failed.stdout
    finally:
        worker.send_signal(signal.SIGTERM)
        deadline = time.monotonic() + 30
        while worker.poll() is None and time.monotonic() < deadline:
            time.sleep(0.1)
        if worker.poll() is None:
            worker.kill()
    assert worker.returncode == 0


def test_a_missing_database_names_the_state_folder_instead_of_inviting_a_second_empty_one(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    for key in [k for k in os.environ if k.startswith("LOREGUARD_") and k != "LOREGUARD_REQUIRE_ALL"]:
        monkeypatch.delenv(key)
    monkeypatch.setenv("LOREGUARD_STATE_DIR", str(tmp_path / "elsewhere"))
    assert run(["batches"]) == 1
    said = capsys.readouterr().err
    assert f"there is no database at {tmp_path / 'elsewhere' / 'loreguard.db'}" in said
    assert "set LOREGUARD_STATE_DIR (or LOREGUARD_DATABASE_URL)" in said
    assert not (tmp_path / "elsewhere").exists()  # nothing was created
