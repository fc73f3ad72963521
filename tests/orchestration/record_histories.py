"""Record batch workflow histories from real runs, for the replay test.

Run after a deliberate change to workflow code that old histories can no longer replay (and only then):
    .venv/bin/python -m tests.orchestration.record_histories
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import tempfile
from pathlib import Path

from temporalio.client import Client, WorkflowFailureError

from cli.devserver import DevServer, free_port
from data import repository
from data.db import make_engine, make_session_factory
from data.migrate import upgrade
from orchestration.client import register_search_attributes
from orchestration.constants import STATE_AWAITING_APPROVAL
from tests.support.batches import pipeline_settings, running_worker, wait_for_state
from tests.support.corpus import write_corpus
from tests.support.operations import decide, start_refresh

HISTORIES = Path(__file__).with_name("histories")


async def record_into(client: Client, db_url: str, work: Path, out: Path) -> list[Path]:
    """Run a completed batch (with chunk-range children), a rejected one and an approved retry; write histories."""
    upgrade(db_url)
    sessions = make_session_factory(make_engine(db_url))
    docs = work / "docs"
    write_corpus(docs, 24, seed=5)
    (docs / "zz-broken.pdf").write_bytes(b"%PDF-1.4 not really")
    with sessions.begin() as session:
        good = repository.create_source(session, name="good", kind="folder", location=str(docs)).id
        bad = repository.create_source(session, name="bad", kind="folder", location=str(work / "gone")).id
    settings = pipeline_settings(db_url, "unused", chunk_size=5, chunks_per_child=3, chunk_window=2)
    ids = []
    async with running_worker(client, settings):
        _, handle = await start_refresh(client, sessions, source_id=good)
        await handle.result()
        ids.append(("completed", handle.id))
        # Ingest fails (no folder), the operator rejects.
        batch_id, handle = await start_refresh(client, sessions, source_id=bad)
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        await decide(client, sessions, batch_id=batch_id, approve=False, actor="ana", reason="source retired")
        with contextlib.suppress(WorkflowFailureError):
            await handle.result()
        ids.append(("failed-ingest", handle.id))
        # Ingest fails, the folder appears, the operator approves a retry, which succeeds.
        batch_id, handle = await start_refresh(client, sessions, source_id=bad)
        await wait_for_state(handle, STATE_AWAITING_APPROVAL)
        write_corpus(work / "gone", 6, seed=6)
        await decide(client, sessions, batch_id=batch_id, approve=True, actor="ana")
        await handle.result()
        ids.append(("approved-retry", handle.id))
    written = []
    out.mkdir(parents=True, exist_ok=True)
    for label, workflow_id in ids:
        async for wf in client.list_workflows(f'WorkflowId STARTS_WITH "{workflow_id}"'):
            history = await client.get_workflow_handle(wf.id, run_id=wf.run_id).fetch_history()
            suffix = wf.id.removeprefix(workflow_id) or "-batch"
            path = out / f"{label}{suffix}.json"
            # The workflow ID is not in the events, and the children's IDs derive from it: keep it beside them.
            path.write_text(json.dumps({"workflow_id": wf.id, "history": json.loads(history.to_json())}))
            written.append(path)
    return written


async def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        server = DevServer(work / "temporal.db", port=free_port(), ui_port=None)
        server.start()
        try:
            client = await Client.connect(server.address)
            await register_search_attributes(client, "default")
            for path in await record_into(client, f"sqlite:///{work / 'app.db'}", work, HISTORIES):
                print("wrote", path)
        finally:
            server.stop()


if __name__ == "__main__":
    asyncio.run(main())
