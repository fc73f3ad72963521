"""The CPU stages run per document in a process pool: they never raise and their results pickle."""

from __future__ import annotations

import multiprocessing
import pickle
import random
from concurrent.futures import ProcessPoolExecutor
from pathlib import Path

import pytest

from guard.types import RawDocument
from tests.support.pdf_builder import minimal_pdf
from workers.stages import pipeline
from workers.stages.pipeline import CpuStageResult, run_cpu_stages, warm_up

_rng = random.Random(1234)
GARBAGE = [
    RawDocument("file:///a", "text/html", _rng.randbytes(3000)),
    RawDocument("file:///b", "text/plain", b"\x00\x01\x02" * 500),
    RawDocument("file:///c", "application/pdf", b"%PDF-1.7\n" + _rng.randbytes(2000)),
    RawDocument("file:///d", "application/pdf", b""),
    RawDocument("file:///e", "text/markdown", b"\xff\xfe" + _rng.randbytes(999)),
    RawDocument("file:///f", "text/html", b"<html><body><div><div><div>" * 3000),
    RawDocument("file:///g", "text/html", b'<?xml version="1.0" encoding="utf-8"?><x>\x00</x>'),
    RawDocument("file:///h", "image/png", b"\x89PNG\r\n\x1a\n"),
]


@pytest.mark.parametrize("raw", GARBAGE, ids=[d.uri.rsplit("/", 1)[-1] for d in GARBAGE])
def test_garbage_never_raises_and_records_the_failed_stage(raw: RawDocument) -> None:
    result = run_cpu_stages(raw)
    assert result.failed_stage in ("normalize", "extract")
    assert result.error and result.metadata is None
    assert result.normalize_ms >= 0


def test_a_good_document_passes_both_stages_with_timings() -> None:
    pdf = minimal_pdf(["Incident response plan", "Call the security desk first."])
    result = run_cpu_stages(RawDocument("file:///plan.pdf", "application/pdf", pdf))
    assert result.ok and result.failed_stage is None and result.error is None
    assert result.metadata is not None and result.metadata.title == "Incident response plan"
    assert result.normalize_ms > 0 and result.extract_ms > 0


@pytest.mark.parametrize("stage", ["normalize", "extract_metadata"])
def test_an_unexpected_exception_fails_only_that_document(
    monkeypatch: pytest.MonkeyPatch, stage: str
) -> None:
    def explode(*_: object, **__: object) -> None:
        raise KeyError("missing piece")

    monkeypatch.setattr(pipeline, stage, explode)
    result = run_cpu_stages(
        RawDocument("file:///x.txt", "text/plain", b"A perfectly normal note about policy.")
    )
    assert result.failed_stage == ("normalize" if stage == "normalize" else "extract")
    assert result.error == "unexpected error: KeyError: 'missing piece'"


def test_results_cross_a_spawned_process_pool(samples: Path) -> None:
    docs = [
        RawDocument("file:///ok.html", "text/html", (samples / "vpn-zero-day-exploited.html").read_bytes()),
        RawDocument("file:///broken.pdf", "application/pdf", (samples / "broken-scan.pdf").read_bytes()),
    ]
    context = multiprocessing.get_context("spawn")
    with ProcessPoolExecutor(max_workers=1, mp_context=context, initializer=warm_up) as pool:
        ok, broken = list(pool.map(run_cpu_stages, docs))
    assert isinstance(ok, CpuStageResult) and ok.ok and ok.metadata is not None
    assert ok.metadata.author == "Priya Raman"
    assert broken.failed_stage == "normalize"
    assert broken.error is not None and broken.error.startswith("corrupt PDF")
    assert pickle.loads(pickle.dumps(ok)) == ok
