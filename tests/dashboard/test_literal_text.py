"""Text from documents and sources is shown as typed: never rendered as HTML or Markdown on any page."""

from __future__ import annotations

from sqlalchemy.orm import Session, sessionmaker
from streamlit.testing.v1 import AppTest

from dashboard.components import literal
from dashboard.text import chart_text
from data import repository
from tests.dashboard.conftest import OpenPage, unescaped
from tests.dashboard.seed import HOSTILE, Seeded
from tests.support.hostile_text import HOSTILE_MD, rendered_constructs

MARKDOWN_ELEMENTS = (
    "markdown",
    "caption",
    "success",
    "error",
    "warning",
    "info",
    "title",
    "header",
    "subheader",
)


def rendered_markdown(at: AppTest) -> list[str]:
    return [str(getattr(e, "value", "")) for kind in MARKDOWN_ELEMENTS for e in at.get(kind)]


def assert_never_rendered(at: AppTest) -> None:
    assert not at.get("html")
    for value in rendered_markdown(at):
        assert "<script>" not in value, value  # would be markup
        assert "**bold**" not in value, value  # would be bold text


def plain_texts(at: AppTest) -> list[str]:
    """What shows as typed: table cells, code blocks, plain text, and escaped Markdown as the reader sees it."""
    cells = [str(v) for df in at.dataframe for v in df.value.to_numpy().ravel()]
    return (
        cells
        + [c.value for c in at.code]
        + [t.value for t in at.text]
        + [unescaped(v) for v in rendered_markdown(at)]
    )


def test_escaping_keeps_every_character() -> None:
    assert unescaped(literal(HOSTILE)) == HOSTILE
    assert "<" not in literal(HOSTILE).replace("\\<", "")
    assert unescaped(literal(HOSTILE_MD)) == HOSTILE_MD
    assert rendered_constructs(HOSTILE_MD) and not rendered_constructs(literal(HOSTILE_MD))


def test_a_line_break_cannot_start_a_block() -> None:
    # A heading, a list, a quote or a table on a line of its own would render even with its first line escaped.
    for brk in ("\n", "\r", "\r\n", "\u2028", "\u2029", "\x0b", "\x0c", "\x85"):
        shown = literal(f"title{brk}# heading{brk}- item{brk}> quote{brk}| a | b |")
        assert shown == "title \\# heading \\- item \\> quote \\| a \\| b \\|", repr(brk)


def test_chart_text_is_not_html() -> None:
    assert (
        chart_text("<a href='x'>a</a> & <img src=x>")
        == "&lt;a href='x'&gt;a&lt;/a&gt; &amp; &lt;img src=x&gt;"
    )


def test_sources_page(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("sources")
    at.selectbox(key="source_chosen").select(seeded.sources[HOSTILE]).run()
    at.button(key="delete").click().run()  # the dialog names the source

    assert_never_rendered(at)
    texts = plain_texts(at)
    assert HOSTILE in texts  # the table cell
    assert any(f"Delete **{HOSTILE}**" in t for t in texts)  # the dialog, bold markers ours, name literal


def test_batch_detail(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("batches", batch=str(seeded.batches["b4"]))

    assert_never_rendered(at)
    texts = plain_texts(at)
    assert f"TooManyFailures: 2 of 3 documents failed: {HOSTILE}" in texts  # list cell and error block
    assert any(f"Source **{HOSTILE}**" in t for t in texts)
    assert HOSTILE in texts  # the document's title in the documents table


def test_library(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("library", q="script")
    assert_never_rendered(at)
    assert plain_texts(at).count(HOSTILE) >= 2  # title and source cells


def test_overview(seeded: Seeded, open_page: OpenPage) -> None:
    assert_never_rendered(open_page("overview"))


def test_approvals(seeded: Seeded, open_page: OpenPage) -> None:
    at = open_page("approvals")
    at.button(key="reject").click().run()  # the dialog too
    assert_never_rendered(at)
    texts = plain_texts(at)
    assert HOSTILE in texts  # the source cell
    assert f"Error: TooManyFailures: 2 of 3 documents failed: {HOSTILE}" in texts


def test_audit(seeded: Seeded, dashboard_env: sessionmaker[Session], open_page: OpenPage) -> None:
    with dashboard_env.begin() as session:
        repository.record_audit(session, actor=HOSTILE, action="reject", target=HOSTILE, reason=HOSTILE)
    at = open_page("audit")
    assert_never_rendered(at)
    assert plain_texts(at).count(HOSTILE) >= 3  # actor, target and reason cells
