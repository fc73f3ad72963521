"""Every page with hostile text in every untrusted field: nothing a source, a person or a model wrote renders as a
picture, a link, colour, maths, an icon or markup, in any element that reads Markdown."""

from __future__ import annotations

from collections.abc import Iterator
from typing import Any

import pytest
from google.protobuf.message import Message
from sqlalchemy import update
from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from data.models import Alert, Artifact, AuditEvent, Batch, BatchDecision, Evaluation, RoleAssignment, Source
from tests.dashboard.conftest import PAGES, OpenPage, plotly_figures
from tests.dashboard.seed import HOSTILE, Seeded
from tests.support.hostile_text import HOSTILE_MD, rendered_constructs

# Elements that show their strings as plain text (or carry data, not text): the hostile string may sit there as is.
PLAIN = {
    "text",
    "code",
    "selectbox",
    "multiselect",
    "text_area",
    "text_input",
    "arrow_data_frame",
    "plotly_chart",
}


# Where a link points (our pages, the Temporal UI): an address, not text that reads Markdown.
ADDRESSES = {"url", "page", "page_script_hash", "query_string"}  # addresses, URL-encoded: never rendered


@pytest.fixture
def hostile(seeded: Seeded, dashboard_env: sessionmaker[Session]) -> Seeded:
    """The seeded library with HOSTILE_MD in every field a source, a person or a model fills."""
    source_id = seeded.sources[HOSTILE]
    b4 = seeded.batches["b4"]
    with dashboard_env.begin() as session:
        session.execute(
            update(Source).where(Source.id == source_id).values(name=HOSTILE_MD, location=HOSTILE_MD)
        )
        session.execute(
            update(Artifact)
            .where(Artifact.batch_id == b4)
            .values(
                title=HOSTILE_MD,
                author=HOSTILE_MD,
                uri=HOSTILE_MD,
                error=HOSTILE_MD,
                clarification=HOSTILE_MD,
            )
        )
        ids = select_ids(session, b4)
        session.execute(
            update(Evaluation)
            .where(Evaluation.artifact_id.in_(ids))
            .values(label=HOSTILE_MD[:50], rationale=HOSTILE_MD, model=HOSTILE_MD, evaluator=HOSTILE_MD[:50])
        )
        session.execute(
            update(Batch)
            .where(Batch.id == b4)
            .values(error_message=HOSTILE_MD, error_type=HOSTILE_MD[:100], decision_reason=HOSTILE_MD)
        )
        session.execute(update(Alert).values(message=HOSTILE_MD))
        session.add_all(
            [
                AuditEvent(
                    actor=HOSTILE_MD,
                    action="reject",
                    target=HOSTILE_MD,
                    target_name=HOSTILE_MD,
                    reason=HOSTILE_MD,
                ),
                BatchDecision(
                    batch_id=b4, attempt=1, decision="rejected", actor=HOSTILE_MD, reason=HOSTILE_MD
                ),
                RoleAssignment(subject=HOSTILE_MD, role="analyst", granted_by=HOSTILE_MD),
            ]
        )
    seeded.sources[HOSTILE_MD] = source_id
    return seeded


def select_ids(session: Session, batch_id: int) -> list[int]:
    return [a.id for a in session.query(Artifact).filter(Artifact.batch_id == batch_id)]


def nodes(node: Any) -> Iterator[Any]:
    yield node
    children = getattr(node, "children", None) or {}
    for child in children.values():
        yield from nodes(child)


def strings(message: Message) -> Iterator[str]:
    for field, value in message.ListFields():
        if field.name in ADDRESSES:
            continue
        values = value if field.is_repeated else [value]
        for v in values:
            if isinstance(v, str):
                yield v
            elif isinstance(v, Message):
                yield from strings(v)


def rendered(at: AppTest) -> list[tuple[str, str, list[str]]]:
    """(element type, text, constructs it would render) for every Markdown-reading string on the page."""
    found = []
    for node in nodes(at._tree):
        proto = getattr(node, "proto", None)
        if not isinstance(proto, Message) or getattr(node, "type", "") in PLAIN:
            continue
        for text in strings(proto):
            if constructs := rendered_constructs(text):
                found.append((str(getattr(node, "type", "")), text, constructs))
    return found


def assert_literal(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]
    assert rendered(at) == []
    for key, figure in plotly_figures(at).items():  # plotly reads a subset of HTML in every text it draws
        assert [t for t in json_strings(figure) if "<img" in t or "<a " in t] == [], key


def json_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        yield value
    elif isinstance(value, dict):
        for v in value.values():
            yield from json_strings(v)
    elif isinstance(value, list):
        for v in value:
            yield from json_strings(v)


def document_id(dashboard_env: sessionmaker[Session], seeded: Seeded) -> int:
    with dashboard_env() as session:
        return min(select_ids(session, seeded.batches["b4"]))


@pytest.mark.parametrize("page", sorted(set(PAGES) - {"document", "batches", "sources", "approvals"}))
def test_page(hostile: Seeded, open_page: OpenPage, page: str) -> None:
    assert_literal(open_page(page))


def test_document(hostile: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage) -> None:
    at = open_page("document", doc=str(document_id(dashboard_env, hostile)))
    assert_literal(at)
    assert any(HOSTILE_MD in t.value for t in at.text)  # the rationale and the author, as typed


def test_batch(hostile: Seeded, open_page: OpenPage) -> None:
    assert_literal(open_page("batches", batch=str(hostile.batches["b4"])))


def test_sources_and_its_dialog(hostile: Seeded, open_page: OpenPage) -> None:
    at = open_page("sources")
    at.selectbox(key="source_chosen").select(hostile.sources[HOSTILE_MD]).run()
    assert_literal(at)
    at.button(key="delete").click().run()
    assert_literal(at)


def test_approvals_and_its_dialog(hostile: Seeded, open_page: OpenPage) -> None:
    at = open_page("approvals")
    assert_literal(at)
    at.button(key="reject").click().run()
    assert_literal(at)
