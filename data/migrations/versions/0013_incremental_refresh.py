"""Incremental refresh (issue 24): what a refresh needs to gather and process only what changed.

- sources.http_etag / http_last_modified: the validators of the version the last successful refresh gathered;
- batches: the validators a batch received (given to the source when it completes), `unchanged_at_source`
  (the server answered 304), `recognised` (folder files not read again), `full` (an operator's full refresh);
- artifacts.raw_hash (bytes as gathered, before normalize), the file's size, mtime (ns) and inode, and
  `gone_at` (the source no longer has the document);
- sightings: each folder file as the last successful refresh saw it.

Columns are added to artifacts with plain ALTER TABLE (no batch copy on SQLite: the table carries the search
triggers of migration 0006, which a copy would drop).

Revision ID: 0013
Revises: 0012
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0013"
down_revision: str | None = "0012"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

_ARTIFACT_COLUMNS = (
    ("raw_hash", sa.String(length=64)),
    ("file_size", sa.BigInteger()),
    ("file_mtime_ns", sa.BigInteger()),
    ("file_inode", sa.BigInteger()),
    ("gone_at", sa.DateTime(timezone=True)),
)


def upgrade() -> None:
    # Plain ALTER TABLE ... ADD COLUMN, not a batch copy of the table: on SQLite, copying `sources` or
    # `batches` of a database that holds batches fails ("database table is locked"), and it is slower.
    op.add_column("sources", sa.Column("http_etag", sa.String(length=500), nullable=True))
    op.add_column("sources", sa.Column("http_last_modified", sa.String(length=100), nullable=True))
    op.add_column("batches", sa.Column("recognised", sa.Integer(), server_default="0", nullable=False))
    op.add_column(
        "batches", sa.Column("unchanged_at_source", sa.Boolean(), server_default=sa.false(), nullable=False)
    )
    op.add_column("batches", sa.Column("full", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.add_column("batches", sa.Column("http_etag", sa.String(length=500), nullable=True))
    op.add_column("batches", sa.Column("http_last_modified", sa.String(length=100), nullable=True))
    for name, type_ in _ARTIFACT_COLUMNS:
        op.add_column("artifacts", sa.Column(name, type_, nullable=True))
    op.create_index("ix_artifacts_source_raw_hash", "artifacts", ["source_id", "raw_hash"], unique=False)
    op.create_index("ix_artifacts_gone_at", "artifacts", ["gone_at"], unique=False)
    op.create_table(
        "sightings",
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("uri_hash", sa.String(length=64), nullable=False),
        sa.Column("uri", sa.String(length=2000), nullable=False),
        sa.Column("size", sa.BigInteger(), nullable=False),
        sa.Column("mtime_ns", sa.BigInteger(), nullable=False),
        sa.Column("inode", sa.BigInteger(), nullable=False),
        sa.Column("raw_hash", sa.String(length=64), nullable=True),
        sa.Column("batch_id", sa.Integer(), nullable=True),
        sa.Column("missing_batch_id", sa.Integer(), nullable=True),
        sa.Column("seen_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_sightings_source_id_sources", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("source_id", "uri_hash", name="pk_sightings"),
    )


def downgrade() -> None:
    op.drop_table("sightings")
    op.drop_index("ix_artifacts_gone_at", table_name="artifacts")
    op.drop_index("ix_artifacts_source_raw_hash", table_name="artifacts")
    for name, _ in reversed(_ARTIFACT_COLUMNS):
        # SQLite 3.35+ drops a column in place (no table copy, so the search triggers stay)
        op.drop_column("artifacts", name)
    for name in ("http_last_modified", "http_etag", "full", "unchanged_at_source", "recognised"):
        op.drop_column("batches", name)
    op.drop_column("sources", "http_last_modified")
    op.drop_column("sources", "http_etag")
