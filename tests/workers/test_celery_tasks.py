"""The hybrid's task payloads: a chunk's counts and metrics report cross the broker as JSON and come back whole;
a chunk is split into tasks of the configured size; a task's failure keeps its error type."""

from __future__ import annotations

from collections import Counter

from kombu.serialization import dumps, loads

from core.settings import Settings
from orchestration.celery_app import make_celery_app
from orchestration.types import ChunkInput, ChunkResult
from workers.celery_chunks import CeleryChunks, _failure
from workers.celery_tasks import ChunkTaskError, decode, encode
from workers.metrics import ChunkReport


def test_a_report_with_counters_crosses_the_broker_as_json_and_comes_back_whole() -> None:
    report = ChunkReport(
        source="7",
        stage="evaluate",
        done=3,
        failed_by_stage=Counter({"evaluate": 1}),
        labels=Counter({"relevant": 2, "irrelevant": 1}),
        stage_ms={"evaluate": [1.5, 2.0, 0.5]},
        evaluator_calls=4,
        evaluator_errors=Counter({"rejected": 1}),
    )
    content_type, encoding, body = dumps(encode(ChunkResult(done=3, failed=1), report), serializer="json")
    result, back = decode(loads(body, content_type, encoding))
    assert result == ChunkResult(done=3, failed=1)
    assert back == report


def test_a_chunk_is_sent_as_tasks_of_the_configured_size() -> None:
    settings = Settings(celery_task_documents=50, _env_file=None)
    chunks = CeleryChunks(make_celery_app(settings), settings)
    assert chunks.ranges(ChunkInput(batch_id=1, start_seq=200, end_seq=330)) == [
        (200, 250),
        (250, 300),
        (300, 330),
    ]
    assert chunks.ranges(ChunkInput(batch_id=1, start_seq=0, end_seq=0)) == []


def test_a_task_that_gave_up_keeps_its_error_type_and_whether_retrying_can_help() -> None:
    assert _failure(ChunkTaskError("EvaluatorUnavailable", "HTTP 503", False)) == (
        "EvaluatorUnavailable",
        "HTTP 503",
        False,
    )
    assert _failure(ChunkTaskError("EvaluatorConfigError", "bad model", True))[2] is True
    assert _failure(RuntimeError("broker gone")) == ("RuntimeError", "broker gone", False)
