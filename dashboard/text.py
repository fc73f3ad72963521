"""Text from sources, people and models shown as typed: the one place that escapes it for Streamlit and plotly.

Streamlit renders Markdown (with its own directives: `:red[...]`, `:material/icon:`, emoji shortcodes, `$` LaTeX)
in markdown, captions, headings, notices, labels of metrics, tabs, expanders, buttons and page links; plotly
renders a subset of HTML (`<a href>`, `<b>`, `<br>`) in axis, hover and legend text. A title, a source's name or
an evaluator's rationale must show as its characters, never as a picture the reader's browser fetches, a link,
colour or markup.
"""

from __future__ import annotations

import html
import re

# Every ASCII punctuation character CommonMark lets a backslash escape, plus ':' (Streamlit's directives and
# shortcodes) and '$' (LaTeX): escaping all of them is simpler to trust than choosing the dangerous ones.
_MARKDOWN_SPECIAL = re.compile(r"""([\\`*_{}\[\]()#+\-.!|<>~$:=&^"'%,;?@/])""")
# Line breaks (and the other characters that end a line) would start a new block: a heading, a list, a table.
_LINE_BREAKS = re.compile(r"[\r\n\v\f\x1c-\x1e\x85\u2028\u2029]+")
# GitHub's autolinks (http://..., www...., name@host) are found in the text after escapes are read, so no
# backslash stops them; an invisible word joiner (U+2060) where each would start does, and the text reads the same.
_AUTOLINK_STARTS = re.compile(r"(?i)(?<![a-z0-9])(https?|www|mailto|xmpp)(?=\\?[:.])|(@)")
WORD_JOINER = "\u2060"


def literal(value: object) -> str:
    """`value` escaped for any Streamlit text that renders Markdown, on one line.

    Every untrusted string (titles, URIs, source names, rationales, reasons, notes, actors, error messages) goes
    through here before it meets st.markdown, a caption, a heading, a notice or a widget's label.
    """
    text = "" if value is None else str(value)
    text = _MARKDOWN_SPECIAL.sub(r"\\\1", _LINE_BREAKS.sub(" ", text))
    return _AUTOLINK_STARTS.sub(lambda m: m.group(0) + WORD_JOINER, text)


def chart_text(value: object) -> str:
    """`value` escaped for plotly's text (ticks, hover, legend, titles), which reads HTML tags and entities."""
    return html.escape("" if value is None else str(value), quote=False)
