"""`loreguard source list` shows what the model evaluator cost per source, as the Sources page does."""

from __future__ import annotations

import json

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from cli.main import run
from data.models import Evaluation
from tests.support.library import Verdict, store_documents


@pytest.fixture
def env(in_process_env: sessionmaker[Session]) -> sessionmaker[Session]:
    sqlite_sessions = in_process_env
    docs = store_documents(sqlite_sessions, "feeds", [Verdict(f"d{i}", "relevant") for i in range(3)])
    with sqlite_sessions.begin() as session:  # as the OpenAI-compatible evaluator records them
        session.execute(update(Evaluation).where(Evaluation.artifact_id.in_(docs)).values(tokens=250_000))
    store_documents(sqlite_sessions, "quiet", [Verdict("q", "relevant")])
    return sqlite_sessions


def test_source_list_shows_tokens_and_cost_with_a_price(
    env: sessionmaker[Session], monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setenv("LOREGUARD_OPENAI_PRICE_PER_MILLION_TOKENS", "2")

    assert run(["source", "list"]) == 0
    out = capsys.readouterr().out
    header = next(line for line in out.splitlines() if "name" in line and "batches" in line)
    assert "tokens" in header and "cost" in header
    feeds = next(line for line in out.splitlines() if " feeds " in line)
    assert "750,000" in feeds and "1.50" in feeds

    assert run(["source", "list", "--json"]) == 0
    listed = {s["name"]: s["tokens"] for s in json.loads(capsys.readouterr().out)}
    assert listed == {"feeds": 750_000, "quiet": 0}


def test_source_list_has_no_cost_columns_where_no_model_reports_tokens(
    env: sessionmaker[Session], capsys: pytest.CaptureFixture[str]
) -> None:
    assert run(["source", "list"]) == 0
    out = capsys.readouterr().out
    assert " feeds " in out and "tokens" not in out and "cost" not in out
