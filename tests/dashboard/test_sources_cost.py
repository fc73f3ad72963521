"""What the model evaluator cost per source: the Sources table's tokens and cost columns (summed in SQL, on
SQLite and PostgreSQL), and a source's name that opens its batches."""

from __future__ import annotations

import pytest
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker

from dashboard import queries
from data.models import Evaluation
from tests.dashboard.conftest import OpenPage
from tests.support.library import Verdict, store_documents


def spend(sessions: sessionmaker[Session], documents: list[int], tokens: int) -> None:
    """As the OpenAI-compatible evaluator records what its API reported for each document."""
    with sessions.begin() as session:
        session.execute(update(Evaluation).where(Evaluation.artifact_id.in_(documents)).values(tokens=tokens))


def library_with_spend(sessions: sessionmaker[Session]) -> None:
    """feeds: 2 batches, 3 documents at 100,000 tokens each; blogs: 1 document at 40,000; quiet: no model."""
    spend(
        sessions, store_documents(sessions, "feeds", [Verdict("a", "relevant")], evaluator="openai"), 100_000
    )
    spend(
        sessions,
        store_documents(
            sessions, "feeds", [Verdict(f"b{i}", "relevant") for i in range(2)], evaluator="openai"
        ),
        100_000,
    )
    spend(
        sessions, store_documents(sessions, "blogs", [Verdict("c", "irrelevant")], evaluator="openai"), 40_000
    )
    store_documents(sessions, "quiet", [Verdict("d", "relevant")])  # the semantic evaluator reports none


def test_sources_table_shows_tokens_and_cost_per_source(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOREGUARD_OPENAI_PRICE_PER_MILLION_TOKENS", "2.5")
    library_with_spend(dashboard_env)

    table = open_page("sources").dataframe[0].value.set_index("name")

    assert table.loc["feeds", "tokens"] == 300_000
    assert table.loc["feeds", "cost"] == 0.75
    assert table.loc["blogs", "tokens"] == 40_000
    assert table.loc["blogs", "cost"] == 0.1
    assert table.loc["quiet", "tokens"] == 0 and table.loc["quiet", "cost"] == 0
    # the totals before the settings: status and figures stay in view on a 1440 px screen
    columns = list(table.columns)
    assert columns.index("tokens") < columns.index("kind") < columns.index("location")


def test_model_evaluator_without_a_price_shows_tokens_only(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOREGUARD_EVALUATOR", "openai")
    monkeypatch.setenv("LOREGUARD_OPENAI_API_KEY", "sk-test-not-a-real-key")
    library_with_spend(dashboard_env)

    table = open_page("sources").dataframe[0].value.set_index("name")

    assert table.loc["feeds", "tokens"] == 300_000
    assert "cost" not in table.columns


def test_no_token_columns_where_no_model_reports_tokens(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    store_documents(dashboard_env, "quiet", [Verdict("d", "relevant")])

    table = open_page("sources").dataframe[0].value

    assert "tokens" not in table.columns and "cost" not in table.columns


def test_a_sources_name_opens_its_batches_and_the_batches_lead_back(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    store_documents(dashboard_env, "feeds & news", [Verdict("a", "relevant")])

    at = open_page("sources")
    (frame,) = [d for d in at.dataframe if "source" in d.value.columns]
    # the link's shown text is read back from the address (decoded), so the name shows as it is
    link = frame.value.set_index("name").loc["feeds & news", "source"]
    assert link == "batches?source=feeds%20%26%20news"
    config = frame.proto.columns
    assert '"source": {"label": "name"' in config and "source=([^&]*)$" in config
    assert '"name"' not in frame.proto.column_order  # only the link shows the name

    batches = open_page("batches", source="feeds & news")
    assert batches.selectbox(key="source").value == "feeds & news"
    back = [p for p in batches.get("page_link") if "Sources" in p.proto.label]
    assert back and back[0].proto.page.endswith("sources")


def test_source_tokens_are_summed_in_sql_on_both_databases(session_factory: sessionmaker[Session]) -> None:
    library_with_spend(session_factory)
    with session_factory() as session:
        summed = {s.name: s.tokens for s in queries.source_summaries(session, with_tokens=True)}
        unsummed = {s.name: s.tokens for s in queries.source_summaries(session)}

    assert summed == {"blogs": 40_000, "feeds": 300_000, "quiet": 0}
    assert unsummed == {"blogs": 0, "feeds": 0, "quiet": 0}  # not read unless asked for
