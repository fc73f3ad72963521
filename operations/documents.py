"""Reading what only some roles may read: a document's text, and the library's CSV export (with or without the
text). The dashboard reads the rows; these checks say whether the person may have them (a refusal is audited)."""

from __future__ import annotations

from core.roles import Permission
from operations.access import require
from operations.context import Actor, Context


def may_read_text(actor: Actor, ctx: Context, artifact_id: int) -> None:
    """Return when the person may see document `artifact_id`'s text; else Forbidden (and audited)."""
    require(actor, ctx, Permission.READ_TEXT, action="read_text", target=f"artifact:{artifact_id}")


def may_export(actor: Actor, ctx: Context, *, with_text: bool) -> None:
    """Return when the person may export the library as CSV (with the documents' text if asked)."""
    require(actor, ctx, Permission.EXPORT_CSV, action="export_csv", target="library")
    if with_text:
        require(actor, ctx, Permission.READ_TEXT, action="export_csv_text", target="library")
