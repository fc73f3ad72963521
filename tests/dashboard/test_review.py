"""The Review page as an analyst and a manager use it: the inbox, one decision at a time, a bulk decision on a
filter, and agreement; what a decision changes on the Library and the document page."""

from __future__ import annotations

import pandas as pd
import pytest
from sqlalchemy import select, update
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from data.models import Artifact, AuditEvent, Evaluation
from tests.dashboard.conftest import OpenPage, person, plotly_figures, unescaped
from tests.support.library import Verdict, store_documents

ANALYST = person("analyst")


def label_of(sessions: sessionmaker[Session], artifact_id: int) -> tuple[str, str | None, str | None]:
    with sessions() as session:
        e = session.execute(select(Evaluation).where(Evaluation.artifact_id == artifact_id)).scalar_one()
        return e.label, e.model_label, e.reviewed_by


def shown(at: AppTest) -> str:
    return "\n".join(
        unescaped(m.value) for m in (*at.markdown, *at.caption, *at.success, *at.error, *at.warning)
    )


def waiting_table(at: AppTest) -> pd.DataFrame:
    (frame,) = [d.value for d in at.dataframe if "why" in d.value.columns]
    return frame


def test_an_analyst_decides_the_oldest_waiting_document_with_its_text_beside_it(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    first, second = store_documents(
        dashboard_env,
        "feeds",
        [Verdict("Insurer fined for late breach notice", "review"), Verdict("Bake sale", "irrelevant", 0.55)],
    )
    at = open_page("review", user=ANALYST)
    waiting = waiting_table(at)
    assert list(waiting["document"]) == [first, second]
    assert list(waiting["why"]) == ["the evaluator was in doubt", "the evaluator was unsure"]
    assert "Insurer fined for late breach notice" in shown(at) and "1 of 2" in shown(at)
    assert at.text_area(key=f"review_text_{first}").value.startswith("Insurer fined")
    assert at.button(key="review_confirm").disabled  # the evaluator gave no label to confirm

    at.text_input(key="review_note").input("a fine for breaking notification rules")
    at.button(key="review_relevant").click().run()
    assert label_of(dashboard_env, first) == ("relevant", "review", "analyst@example.org")
    assert f"Document {first}: relevant (overridden)" in shown(at)
    assert "Bake sale" in shown(at) and "1 of 1" in shown(at)  # the next one is up
    at.button(key="review_confirm").click().run()  # "Confirm irrelevant"
    assert label_of(dashboard_env, second) == ("irrelevant", "irrelevant", "analyst@example.org")
    assert "Nothing waits for review" in "\n".join(i.value for i in at.info)

    library = open_page("library", user=ANALYST)
    rows = {r["id"]: r for r in library.dataframe[0].value.to_dict("records")}
    assert (rows[first]["label"], rows[first]["decided by"], rows[first]["evaluator said"]) == (
        "relevant",
        "analyst@example.org",
        "review",
    )
    doc = open_page("document", user=ANALYST, doc=str(first))
    assert "Decided by analyst@example.org" in shown(doc)
    assert "overriding the evaluator's review" in shown(doc)


def test_an_override_without_a_reason_is_refused_and_nothing_changes(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    (doc,) = store_documents(dashboard_env, "feeds", [Verdict("Router flaw", "relevant", 0.55)])
    at = open_page("review", user=ANALYST)
    at.button(key="review_irrelevant").click().run()
    assert "needs a reason" in shown(at)
    assert label_of(dashboard_env, doc) == ("relevant", "relevant", None)


def test_bulk_confirmation_on_a_filter_shows_the_count_first(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    docs = store_documents(
        dashboard_env, "feeds", [Verdict(f"Note {i}", "irrelevant", 0.55) for i in range(3)]
    )
    store_documents(dashboard_env, "feeds", [Verdict("Unsure yes", "relevant", 0.55)])
    at = open_page("review", user=ANALYST)
    at.selectbox(key="review_model_label").select("irrelevant").run()
    assert "3 document(s) wait on the filter above" in shown(at)
    assert at.button(key="bulk_review_go").label == "Decide all 3"
    at.button(key="bulk_review_go").click().run()
    assert "3 document(s) decided, 0 of them overridden" in shown(at)
    assert {label_of(dashboard_env, d) for d in docs} == {("irrelevant", "irrelevant", "analyst@example.org")}
    with dashboard_env() as session:
        actions = [a.action for a in session.execute(select(AuditEvent)).scalars()]
    assert actions.count("review:bulk") == 1


def test_a_viewer_reads_the_inbox_and_reports_a_verdict_but_cannot_decide(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    (doc,) = store_documents(dashboard_env, "feeds", [Verdict("Storm breaches sea wall", "relevant")])
    viewer = person("viewer")
    page = open_page("document", user=viewer, doc=str(doc))
    page.text_input(key="doc_report_note").input("weather, not a breach")
    page.button(key="doc_report_send").click().run()
    assert "Sent to the Review inbox" in shown(page)
    at = open_page("review", user=viewer)
    assert list(waiting_table(at)["why"]) == ["a reader reported it"]
    assert "weather, not a breach" in shown(at)
    assert not [b for b in at.button if b.key in ("review_relevant", "bulk_review_go")]
    assert "You need the analyst" in shown(at)


def test_a_manager_sees_how_often_people_override_each_evaluator(
    dashboard_env: sessionmaker[Session], open_page: OpenPage
) -> None:
    docs = store_documents(dashboard_env, "feeds", [Verdict(f"D{i}", "relevant", 0.55) for i in range(4)])
    at = open_page("review", user=ANALYST)
    at.text_input(key="review_note").input("not about security")
    at.button(key="review_irrelevant").click().run()
    for _ in docs[1:]:
        at.button(key="review_confirm").click().run()
    manager = open_page("review", user=person("manager"))
    (figure,) = plotly_figures(manager).values()
    (trace,) = figure["data"]
    assert trace["name"] == "semantic"
    per_source = next(d.value for d in manager.dataframe if "override share" in d.value.columns)
    assert per_source.to_dict("records") == [
        {"evaluator": "semantic", "source": "feeds", "reviewed": 4, "overridden": 1, "override share": "25%"}
    ]


def test_batches_and_the_overview_show_what_the_model_evaluator_cost(
    dashboard_env: sessionmaker[Session], open_page: OpenPage, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("LOREGUARD_EVALUATOR", "openai")
    monkeypatch.setenv("LOREGUARD_OPENAI_PRICE_PER_MILLION_TOKENS", "2.5")
    docs = store_documents(
        dashboard_env, "feeds", [Verdict(f"d{i}", "relevant") for i in range(4)], evaluator="openai"
    )
    with dashboard_env.begin() as session:
        session.execute(update(Evaluation).where(Evaluation.artifact_id.in_(docs)).values(tokens=100_000))
        batch_id = session.execute(select(Artifact.batch_id).where(Artifact.id == docs[0])).scalar_one()
    batch = open_page("batches", batch=str(batch_id))
    assert "Model evaluator: 400,000 tokens, cost 1.00" in shown(batch)
    overview = open_page("overview")
    assert "Model evaluator this week" in shown(overview) and "400,000 tokens, cost 1.00" in shown(overview)
