"""The Sources page's Full refresh: the operator ticks it, the batch started is a full one, the audit says so;
without it a refresh is incremental."""

from __future__ import annotations

import asyncio
from pathlib import Path

import pytest
from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker
from temporalio.client import Client

from cli.devserver import DevServer
from data import repository
from data.models import AuditEvent, Batch
from orchestration.client import register_search_attributes
from tests.dashboard.conftest import OPERATOR, OpenPage, clear_streamlit_caches, unescaped
from tests.dashboard.seed import Seeded


@pytest.mark.temporal
def test_an_operator_starts_a_full_refresh_from_the_sources_page(
    fresh_dev_server: DevServer,
    monkeypatch: pytest.MonkeyPatch,
    seeded: Seeded,
    dashboard_env: sessionmaker[Session],
    open_page: OpenPage,
    tmp_path: Path,
) -> None:
    monkeypatch.setenv("LOREGUARD_TEMPORAL_ADDRESS", fresh_dev_server.address)

    async def prepare() -> None:
        await register_search_attributes(await Client.connect(fresh_dev_server.address), "default")

    asyncio.run(prepare())
    at = open_page("sources")
    at.selectbox(key="source_chosen").select("alpha").run()
    at.checkbox(key="refresh_full").check().run()
    at.button(key="refresh").click().run()

    assert not at.error, [unescaped(e.value) for e in at.error]
    with dashboard_env() as session:
        batch = session.scalars(select(Batch).order_by(Batch.id.desc())).first()
        assert batch is not None and batch.source_id == seeded.sources["alpha"]
        assert batch.full is True
        event = session.scalars(select(AuditEvent).order_by(AuditEvent.id.desc())).first()
    assert any(f"Full batch {batch.id} started for 'alpha'" in unescaped(s.value) for s in at.success)
    assert event is not None and (event.actor, event.action) == (OPERATOR, "refresh_full")
    assert "full refresh" in (event.reason or "")

    # a refresh with the box left unticked on a fresh page is incremental
    with dashboard_env.begin() as session:
        gamma = repository.create_source(session, name="gamma", kind="folder", location=str(tmp_path)).id
    clear_streamlit_caches()  # the sources list is cached for a few seconds
    at = open_page("sources")
    at.selectbox(key="source_chosen").select(gamma).run()
    at.button(key="refresh").click().run()
    assert not at.error, [unescaped(e.value) for e in at.error]
    with dashboard_env() as session:
        latest = session.scalars(select(Batch).order_by(Batch.id.desc())).first()
    assert latest is not None and latest.source_id == gamma and latest.full is False
