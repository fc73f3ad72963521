"""Recorded histories of the batch workflow replay cleanly under the current workflow code (determinism)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
from temporalio.client import WorkflowHistory
from temporalio.worker import Replayer

from orchestration.chunks import ChunkRangeWorkflow
from orchestration.workflows import BatchWorkflow
from tests.conftest import TemporalNamespace
from tests.orchestration.record_histories import HISTORIES, record_into

RECORDED = sorted(HISTORIES.glob("*.json"))


def load(path: Path) -> WorkflowHistory:
    recorded = json.loads(path.read_text())
    return WorkflowHistory.from_json(recorded["workflow_id"], recorded["history"])


def test_recorded_histories_are_present() -> None:
    names = {p.stem for p in RECORDED}
    assert "completed-batch" in names and "failed-ingest-batch" in names
    assert any(n.startswith("completed-chunks-") for n in names)
    assert "approved-retry-batch" in names and any(
        n.startswith("approved-retry-attempt-2-chunks") for n in names
    )


@pytest.mark.parametrize("path", RECORDED, ids=[p.stem for p in RECORDED])
async def test_committed_history_replays(path: Path) -> None:
    replayer = Replayer(workflows=[BatchWorkflow, ChunkRangeWorkflow])
    result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
    assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"


@pytest.mark.temporal
async def test_fresh_histories_replay(namespace: TemporalNamespace, tmp_path: Path) -> None:
    client = await namespace.connect()
    paths = await record_into(client, f"sqlite:///{tmp_path / 'app.db'}", tmp_path, tmp_path / "histories")
    assert len(paths) >= 6
    replayer = Replayer(workflows=[BatchWorkflow, ChunkRangeWorkflow])
    for path in paths:
        result = await replayer.replay_workflow(load(path), raise_on_replay_failure=False)
        assert result.replay_failure is None, f"{path.name}: {result.replay_failure}"
