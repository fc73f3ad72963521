"""The sample corpus a newcomer sees on `loreguard up`: every file processes except the broken scan."""

from __future__ import annotations

from pathlib import Path

import pytest

from guard.gather import list_folder, read_file
from workers.stages.clarify import hamming
from workers.stages.pipeline import CpuStageResult, run_cpu_stages

SAMPLES = Path(__file__).resolve().parents[2] / "data" / "samples"
SAMPLE_NAMES = [p.relative_to(SAMPLES).as_posix() for p in list_folder(SAMPLES, roots=[SAMPLES])]


@pytest.fixture(scope="module")
def processed() -> dict[str, CpuStageResult]:
    return {
        name: run_cpu_stages(read_file(SAMPLES / name, 20 * 1024 * 1024, folder=SAMPLES))
        for name in SAMPLE_NAMES
    }


def test_the_corpus_has_the_documents_the_readme_promises() -> None:
    assert len(SAMPLE_NAMES) >= 12
    suffixes = {Path(name).suffix for name in SAMPLE_NAMES}
    assert {".html", ".md", ".txt", ".pdf"} <= suffixes


@pytest.mark.parametrize("name", SAMPLE_NAMES)
def test_every_sample_processes_except_the_broken_scan(
    processed: dict[str, CpuStageResult], name: str
) -> None:
    result = processed[name]
    if name == "broken-scan.pdf":
        assert result.failed_stage == "normalize"
        assert result.error is not None and result.error.startswith("corrupt PDF")
    else:
        assert result.ok, f"{name} failed at {result.failed_stage}: {result.error}"
        assert result.metadata is not None and result.metadata.title


def test_the_exact_duplicate_pair_shares_a_content_hash(processed: dict[str, CpuStageResult]) -> None:
    original = processed["compliance/vendor-access-review.txt"].normalized
    copy = processed["shared/vendor-access-review (copy).txt"].normalized
    assert original is not None and copy is not None
    assert original.content_hash == copy.content_hash


def test_the_syndicated_article_is_a_near_duplicate(processed: dict[str, CpuStageResult]) -> None:
    original = processed["phishing-campaign-targets-finance.html"].normalized
    syndicated = processed["syndicated/phishing-campaign-targets-finance.html"].normalized
    assert original is not None and syndicated is not None
    assert original.content_hash != syndicated.content_hash
    assert hamming(original.simhash, syndicated.simhash) <= 3


def test_languages_and_pdf_metadata(processed: dict[str, CpuStageResult]) -> None:
    languages = {name: r.normalized.language for name, r in processed.items() if r.normalized}
    assert languages["datenschutz-leitlinie-cloud.html"] == "de"
    assert {lang for name, lang in languages.items() if name != "datenschutz-leitlinie-cloud.html"} == {"en"}
    pdf = processed["access-control-standard.pdf"].metadata
    assert pdf is not None and (pdf.title, pdf.author) == (
        "Access Control Standard IS-STD-04",
        "Information Security Office",
    )
