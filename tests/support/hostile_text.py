"""Hostile text for every untrusted field, and the check that a page showed it as typed, never as Markdown."""

from __future__ import annotations

import re
from collections.abc import Iterator
from typing import Any

from markdown_it import MarkdownIt

ATTACKER = "127.0.0.1:9"  # nobody listens: a request there would be the reader's browser calling the author
# One line (labels are one line); line breaks are tested apart: literal() turns them into spaces.
HOSTILE_MD = (
    f"![x](http://{ATTACKER}/pixel.png) [link](http://{ATTACKER}/) :red[red] :blue-background[bg] $x^2$ "
    "<img src=x> <a href=x>y</a> **bold** :material/skull: :smile: `code` # not a heading "
    "www.attacker.example mail reader@attacker.example"
)
# What must never reach Markdown unescaped: each would render as a picture, a link, colour, maths, an icon, markup.
CONSTRUCTS = (
    "![",
    "](",
    ":red[",
    ":blue-background[",
    "$x",
    "<img",
    "**bold**",
    ":material/skull:",
    ":smile:",
    "`code`",
)
_UNESCAPED = [re.compile(r"(?<!\\)" + re.escape(c)) for c in CONSTRUCTS] + [
    re.compile(r"(?i)(https?|www)\\?[:.]|@\w"),  # GitHub's autolinks, which backslashes do not stop
]
_PARSER = MarkdownIt("commonmark").enable(["table", "strikethrough"])
_RENDERING = {"image", "link_open", "html_inline", "html_block"}


def rendered_constructs(markdown: str) -> list[str]:
    """What in `markdown` would render as something other than its characters, as found by CommonMark and by
    Streamlit's own directives (which CommonMark does not know)."""
    found = [c.pattern for c in _UNESCAPED if c.search(markdown)]
    for token in _tokens(_PARSER.parse(markdown)):
        if token.type in _RENDERING:
            found.append(token.type)
    return found


def _tokens(tokens: list[Any]) -> Iterator[Any]:
    for token in tokens:
        yield token
        yield from _tokens(token.children or [])
