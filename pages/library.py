"""Library: stored documents with their evaluation; search, filters, paging and a CSV export."""

from __future__ import annotations

import re
from datetime import date

import streamlit as st

from core.roles import Permission
from dashboard import library, views
from dashboard.auth import actor, allowed, needs_sentence, require
from dashboard.components import DOCUMENT_PAGE, database_required, literal, pager, zone_name
from dashboard.components import table as rows_table

PAGE_SIZE = 50

st.title("Library")
require(Permission.READ)
db = views.db_key()

with database_required():
    source_names = views.source_options(db)
    labels, languages = views.library_options(db)

SEARCH_HELP = (
    "Every word must appear in the title or text, in any order and any case; end a word with * for words "
    "starting with it (ransom* finds ransomware). There are no operators: OR, AND, NOT, quotes and a leading - "
    "are searched as words or ignored."
)
search = st.text_input(
    "Search titles and text",
    key="q",
    bind="query-params",
    placeholder="e.g. ransom* breach",
    help=SEARCH_HELP,
)
if re.search(r"(^|\s)(OR|AND|NOT)(\s|$)|(^|\s)-\w|\"", search):
    st.caption(
        "OR, AND, NOT, quotes and a leading - are not operators here: every word you typed must appear "
        "(punctuation is ignored)."
    )
source_col, label_col, relevance_col, language_col, dates_col, presence_col = st.columns(6)
source_id = source_col.selectbox(
    "Source",
    [None, *source_names],
    format_func=lambda i: "all sources" if i is None else source_names[i],
    key="library_source",
)
label = label_col.selectbox(
    "Label", [None, *labels], format_func=lambda v: "all labels" if v is None else v, key="library_label"
)
min_relevance = relevance_col.number_input(
    "Relevance at least", min_value=0.0, max_value=1.0, value=0.0, step=0.05, key="library_min_relevance"
)
language = language_col.selectbox(
    "Language",
    [None, *languages],
    format_func=lambda v: "all languages" if v is None else v,
    key="library_language",
)
stored = dates_col.date_input(
    f"Stored between ({zone_name()} dates)", value=[], key="library_dates", format="YYYY-MM-DD"
)
PRESENCE_WORDS = {
    "all": "present and gone",
    library.PRESENT: "still at the source",
    library.GONE: "gone from the source",
}
presence = presence_col.selectbox(
    "At the source",
    list(library.PRESENCES),
    format_func=PRESENCE_WORDS.__getitem__,
    key="library_presence",
    help="A document a refresh no longer found at its source is marked gone, not deleted.",
)
days: tuple[date, ...] = tuple(stored) if isinstance(stored, tuple | list) else (stored,) if stored else ()

f = library.LibraryFilter(
    search=search or "",
    source_id=source_id,
    label=label,
    min_relevance=min_relevance or None,
    language=language,
    stored_from=days[0] if days else None,
    stored_to=days[-1] if days else None,
    zone=zone_name(),
    presence=presence,
)

with database_required():
    count, capped = views.library_count(db, f)
    ranked = bool(library.search_terms(f.search))
    st.caption(
        f"{count:,}{'+' if capped else ''} document(s) match, {'best match' if ranked else 'newest'} first"
        + (f" (counting stops at {count:,})" if capped and not ranked else "")
        + (
            f" (the newest {count:,} matches are ranked; add words or filters to narrow)"
            if capped and ranked
            else ""
        )
        + "."
    )
    table = st.container()
    offset = pager(count, PAGE_SIZE, key="library_page")
    frame = views.library_page(db, f, PAGE_SIZE, offset)

with table:
    rows_table(
        frame,
        key="library_rows",
        # the link to the document first, then when, what and its label: in view on a 1440 px screen
        column_order=["open", *(c for c in frame.columns if c != "open")],
        column_config={
            "stored": st.column_config.DatetimeColumn(f"stored ({zone_name()})", format="YYYY-MM-DD HH:mm"),
            "published": st.column_config.DatetimeColumn(format="YYYY-MM-DD"),
            "confidence": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
            "relevance": st.column_config.ProgressColumn(min_value=0.0, max_value=1.0, format="%.2f"),
            "credibility": st.column_config.NumberColumn(format="%.2f"),
            "rationale": st.column_config.TextColumn(width="large"),
            "uri": st.column_config.TextColumn(),
            "gone since": st.column_config.DatetimeColumn(
                f"gone since ({zone_name()})",
                format="YYYY-MM-DD HH:mm",
                help="When a refresh found the source no longer has it (empty: still there)",
            ),
            "seen": st.column_config.NumberColumn("seen", help="Times this content was gathered, any source"),
            "open": st.column_config.LinkColumn("open", display_text="open"),
        },
    )

if not frame.empty:
    titles = {int(i): (t or u) for i, t, u in zip(frame["id"], frame["title"], frame["uri"], strict=True)}
    pick_col, link_col = st.columns([3, 1], vertical_alignment="bottom")
    picked = pick_col.selectbox(
        "Open a document", list(titles), format_func=lambda i: f"{i} · {titles[i]}", key="library_open"
    )
    link_col.page_link(
        DOCUMENT_PAGE, label="Open document", icon=":material/description:", query_params={"doc": str(picked)}
    )

if allowed(Permission.EXPORT_CSV):  # the CSV is built only for those who may have it
    text_ok = allowed(Permission.READ_TEXT)
    with_text = st.checkbox(
        "Include the documents' text",
        key="library_csv_text",
        disabled=not text_ok,
        help=None if text_ok else needs_sentence(Permission.READ_TEXT),
    )
    st.download_button(
        "Download CSV",
        data=views.library_csv(f, actor=actor(), with_text=with_text and text_ok),
        file_name="loreguard-library.csv",
        mime="text/csv",
        icon=":material/download:",
        key="library_csv",
        on_click="ignore",
    )
    st.caption(
        f"The export holds the matching documents newest first, at most {library.EXPORT_CAP:,} rows "
        f"(read from the database in chunks of {library.EXPORT_CHUNK:,}); narrow the filters for older ones. "
        f"Times are in {zone_name()} (ISO 8601 with the offset)."
    )
else:
    st.caption(literal(needs_sentence(Permission.EXPORT_CSV)))
