"""`loreguard cancel`: stop batches from the command line, by id or every running batch matching a filter (the
count printed first), through the operations layer, against a real Temporal dev server."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from cli.devserver import DevServer
from cli.main import run
from tests.support.cli import ME, SAMPLES, Loreguard

pytestmark = pytest.mark.temporal


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["--reason", "x"], "name the batches to cancel, or use --all"),
        (["1", "--all", "--reason", "x"], "give batch ids or --all with a filter, not both"),
        (["1", "--source", "docs", "--reason", "x"], "--source and --status narrow --all"),
        (["1", "--reason", "  "], "a cancellation needs a reason"),
        (["--all", "--status", "completed", "--reason", "x"], "Invalid value for '--status'"),
    ],
    ids=["nothing-named", "ids-and-all", "filter-without-all", "blank-reason", "not-a-running-status"],
)
def test_cancel_refuses_unclear_requests(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["cancel", *args]) == 2  # refused before any database or Temporal is reached
    assert message in capsys.readouterr().err


def test_cancel_one_batch_then_the_filter_finds_it_cancelling_already(
    with_temporal: Loreguard,
    fresh_dev_server: DevServer,
    tmp_path: Path,
) -> None:
    lg = with_temporal
    lg.ok("source", "add", "docs", "--kind", "folder", "--location", str(SAMPLES))
    batch_id = int(json.loads(lg.ok("refresh", "docs", "--json").stdout)["batch_id"])  # no worker: it waits

    done = lg.ok("cancel", str(batch_id), "--reason", "wrong source", "--actor", "olga")
    assert done.stdout.startswith(f"Batch {batch_id}: cancellation requested")
    (row,) = json.loads(lg.ok("batches", "--json").stdout)
    assert (row["decision"], row["decided_by"], row["decision_reason"]) == (
        "cancelled",
        f"{ME} as olga",
        "wrong source",
    )

    # The filter shows what it matches first; the batch is being cancelled already, so it refuses (status 1).
    again = lg("cancel", "--all", "--source", "docs", "--reason", "again", "--yes")
    assert again.returncode == 1, again.stderr
    assert again.stdout.startswith(f"1 running batch(es) match: {batch_id} (docs, pending)")
    assert f"Batch {batch_id}: refused: batch {batch_id} is being cancelled already (by {ME} as olga)" in (
        again.stderr
    )
    nothing = lg.ok("cancel", "--all", "--status", "running", "--reason", "x", "--yes")
    assert nothing.stdout.strip() == "no running batch matches"
