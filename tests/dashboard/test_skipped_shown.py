"""What a batch did not gather shows with why: a folder's files of an unsupported type on the batch's page,
and in the register form's dry run, how many files the folder holds and how many a batch would skip."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from core.vocabulary import ArtifactStatus, BatchStatus
from data import repository
from tests.dashboard.conftest import OpenPage, unescaped
from tests.dashboard.seed import Seeded

OVER_LIMIT = "over the per-batch limit (LOREGUARD_MAX_DOCUMENTS_PER_BATCH)"


def shown(at: AppTest) -> list[str]:
    return [unescaped(e.value) for e in (*at.caption, *at.markdown, *at.warning)]


def test_a_batch_page_says_which_files_were_skipped_and_why(
    seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    with dashboard_env.begin() as session:  # as ingest records a folder with 3 odd files and 1 over the limit
        batch = repository.create_batch(session, source_id=seeded.sources["alpha"])
        repository.insert_artifacts(
            session,
            rows=[
                {"batch_id": batch.id, "source_id": batch.source_id, "seq": seq, "uri": f"file:///d/{seq}.md",
                 "content_type": "text/markdown", "status": ArtifactStatus.STORED}
                for seq in range(2)
            ],
        )  # fmt: skip
        reasons = {"unsupported file type .docx": 1, "unsupported file type .xyz": 2, OVER_LIMIT: 1}
        repository.record_ingested(session, batch_id=batch.id, skipped=4, skip_reasons=reasons)
        repository.finish_batch(session, batch_id=batch.id, status=BatchStatus.COMPLETED)
        batch_id = batch.id

    at = open_page("batches", batch=str(batch_id))

    assert {m.label: m.value for m in at.metric}["Skipped"] == "4"
    assert (
        "3 file(s) of the folder were skipped: unsupported file type .xyz (2), unsupported file type .docx (1)."
        in shown(at)
    )
    assert f"1 more document(s) of the source were not gathered: {OVER_LIMIT}." in shown(at)
    rows = at.dataframe[0].value.set_index("batch")
    assert rows.loc[batch_id, "skipped"] == 4


@pytest.fixture
def mixed_folder(tmp_path: Path) -> Path:
    docs = tmp_path / "mixed"
    docs.mkdir()
    (docs / "a.md").write_text("# Access policy\n\nWho may read what.\n")
    (docs / "b.txt").write_text("Quarterly notes.\n")
    (docs / "data.xyz").write_bytes(b"\x00\x01")
    (docs / "more.xyz").write_bytes(b"\x00\x02")
    (docs / "report.docx").write_bytes(b"PK\x03\x04")
    (docs / ".hidden.md").write_text("never read")
    return docs


def dry_run(open_page: OpenPage, folder: Path) -> AppTest:
    at = open_page("sources")
    at.text_input(key="new_name").input("mixed")
    at.selectbox(key="new_kind").select("folder")
    at.text_input(key="new_location").input(str(folder))
    next(b for b in at.button if b.label == "Preview (dry run)").click()
    at.run()
    assert not at.error, [e.value for e in at.error]
    return at


def test_the_dry_run_says_how_many_files_the_folder_holds_and_what_a_batch_would_skip(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, mixed_folder: Path
) -> None:
    at = dry_run(open_page, mixed_folder)

    assert (
        "The folder holds 5 file(s) (hidden ones are never read); a batch would skip 3: "
        "unsupported file type .xyz (2), unsupported file type .docx (1)." in shown(at)
    )
    preview = next(d for d in at.dataframe if "problem" in d.value.columns).value
    assert [Path(u).name for u in preview["uri"]] == ["a.md", "b.txt"]


def test_the_dry_run_counts_readable_files_over_the_per_batch_limit(
    dashboard_env: sessionmaker[Session],
    open_page: OpenPage,
    mixed_folder: Path,
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv("LOREGUARD_MAX_DOCUMENTS_PER_BATCH", "1")

    at = dry_run(open_page, mixed_folder)

    assert (
        "The folder holds 5 file(s) (hidden ones are never read); a batch would skip 4: "
        f"unsupported file type .xyz (2), unsupported file type .docx (1), {OVER_LIMIT} (1)." in shown(at)
    )


def test_a_folder_of_readable_files_says_a_batch_would_gather_every_one(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, tmp_path: Path
) -> None:
    docs = tmp_path / "plain"
    docs.mkdir()
    (docs / "a.md").write_text("# One\n")

    at = dry_run(open_page, docs)

    assert (
        "The folder holds 1 file(s) (hidden ones are never read); a batch would gather every one."
        in shown(at)
    )
