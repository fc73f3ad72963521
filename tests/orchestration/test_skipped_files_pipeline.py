"""Through the real pipeline (a Temporal dev server and a worker): a folder with files of types the pipeline
does not read completes with them counted as skipped, with the reason, beside what it stored."""

from __future__ import annotations

from pathlib import Path

import pytest
from sqlalchemy.orm import Session, sessionmaker

from data import repository
from data.models import Batch
from tests.conftest import TemporalNamespace
from tests.support.batches import pipeline_settings, running_worker
from tests.support.corpus import write_corpus
from tests.support.operations import start_refresh

pytestmark = pytest.mark.temporal


async def test_a_folder_with_unsupported_files_completes_with_them_skipped_and_why(
    namespace: TemporalNamespace, sqlite_sessions: sessionmaker[Session], sqlite_url: str, tmp_path: Path
) -> None:
    folder = tmp_path / "docs"
    write_corpus(folder, 4)
    (folder / "sheet.xlsx").write_bytes(b"PK\x03\x04")
    (folder / "scan.tiff").write_bytes(b"II*\x00")
    (folder / "other.tiff").write_bytes(b"II*\x00")
    with sqlite_sessions.begin() as session:
        source_id = repository.create_source(session, name="docs", kind="folder", location=str(folder)).id
    client = await namespace.connect()

    async with running_worker(client, pipeline_settings(sqlite_url, namespace)):
        batch_id, handle = await start_refresh(client, sqlite_sessions, source_id=source_id)
        await handle.result()

    with sqlite_sessions() as session:
        batch = session.get_one(Batch, batch_id)
        assert (batch.status, batch.total, batch.stored, batch.failed, batch.skipped) == (
            "completed",
            4,
            4,
            0,
            3,
        )
        assert batch.skip_reasons == {"unsupported file type .tiff": 2, "unsupported file type .xlsx": 1}
