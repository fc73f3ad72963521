"""dashboard at scale: SLA rollups and full-text search

- sla_days, sla_day_buckets: per source and day, the SLA figures of the batches started that day once
  they finished, and a histogram of their documents' processing times (data.repository.sla). Built by 0008
  for the batches already finished; kept up to date by the worker's finish step; `loreguard sla rebuild`
  redoes them.
- alerts (kind, created_at): the SLA page's breaches in its window; artifacts (status, ingested_at): the
  Workers page's failed documents of the last minutes.
- full-text search over artifacts' title and text, ranked, maintained by triggers and built here for the rows
  already stored: on SQLite the FTS5 table artifact_search (external content: the index only, no copy of the
  text); on PostgreSQL the tsvector column artifacts.search (title weighted A, the first 100,000 characters
  of the text B: a tsvector is limited to 1 MB) with a GIN index.

Note for SQLite: a later migration that rebuilds `artifacts` with batch_alter_table ("move and copy") drops
its triggers; such a migration must create the three artifacts_search_* triggers again.

Revision ID: 0006
Revises: 0005
Create Date: 2026-12-01 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0006"
down_revision: str | None = "0005"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

SQLITE_SEARCH = [
    "CREATE VIRTUAL TABLE artifact_search USING fts5("
    "title, text, content='artifacts', content_rowid='id', tokenize='unicode61 remove_diacritics 2')",
    "CREATE TRIGGER artifacts_search_insert AFTER INSERT ON artifacts BEGIN"
    " INSERT INTO artifact_search (rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "CREATE TRIGGER artifacts_search_delete AFTER DELETE ON artifacts BEGIN"
    " INSERT INTO artifact_search (artifact_search, rowid, title, text)"
    " VALUES ('delete', old.id, old.title, old.text); END",
    "CREATE TRIGGER artifacts_search_update AFTER UPDATE OF title, text ON artifacts BEGIN"
    " INSERT INTO artifact_search (artifact_search, rowid, title, text)"
    " VALUES ('delete', old.id, old.title, old.text);"
    " INSERT INTO artifact_search (rowid, title, text) VALUES (new.id, new.title, new.text); END",
    "INSERT INTO artifact_search (artifact_search) VALUES ('rebuild')",
]

# PostgreSQL's parser drops anything shaped like markup ("<script>") as a tag; FTS5 indexes the words inside.
# Angle brackets become spaces first, so a title such as "<script>alert(1)</script>" is found on both.
POSTGRES_VECTOR = (
    "setweight(to_tsvector('simple', translate(coalesce({row}title, ''), '<>', '  ')), 'A')"
    " || setweight(to_tsvector('simple', translate(left(coalesce({row}text, ''), 100000), '<>', '  ')), 'B')"
)
POSTGRES_SEARCH = [
    "ALTER TABLE artifacts ADD COLUMN search tsvector",
    "CREATE FUNCTION artifacts_search_vector() RETURNS trigger LANGUAGE plpgsql AS $$ BEGIN"
    f" NEW.search := {POSTGRES_VECTOR.format(row='NEW.')}; RETURN NEW; END $$",
    "CREATE TRIGGER artifacts_search BEFORE INSERT OR UPDATE OF title, text ON artifacts"
    " FOR EACH ROW EXECUTE FUNCTION artifacts_search_vector()",
    f"UPDATE artifacts SET search = {POSTGRES_VECTOR.format(row='')}",
    "CREATE INDEX ix_artifacts_search ON artifacts USING gin (search)",
]


def upgrade() -> None:
    op.create_table(
        "sla_days",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("batches", sa.Integer(), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.Column("stored", sa.Integer(), nullable=False),
        sa.Column("failed", sa.Integer(), nullable=False),
        sa.Column("on_time", sa.Integer(), nullable=False),
        sa.Column("target_hours", sa.Float(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_sla_days_source_id_sources", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("day", "source_id", name="pk_sla_days"),
    )
    op.create_table(
        "sla_day_buckets",
        sa.Column("day", sa.Date(), nullable=False),
        sa.Column("source_id", sa.Integer(), nullable=False),
        sa.Column("bucket", sa.SmallInteger(), nullable=False),
        sa.Column("documents", sa.Integer(), nullable=False),
        sa.ForeignKeyConstraint(
            ["source_id"], ["sources.id"], name="fk_sla_day_buckets_source_id_sources", ondelete="CASCADE"
        ),
        sa.PrimaryKeyConstraint("day", "source_id", "bucket", name="pk_sla_day_buckets"),
    )
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.create_index("ix_alerts_kind_created_at", ["kind", "created_at"], unique=False)
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index("ix_artifacts_status_ingested_at", ["status", "ingested_at"], unique=False)
    bind = op.get_bind()
    for statement in SQLITE_SEARCH if bind.dialect.name == "sqlite" else POSTGRES_SEARCH:
        op.execute(statement)
    # The rollups are filled by 0008, once their rows carry the zone their days belong to.


def downgrade() -> None:
    if op.get_bind().dialect.name == "sqlite":
        for trigger in ("insert", "delete", "update"):
            op.execute(f"DROP TRIGGER IF EXISTS artifacts_search_{trigger}")
        op.execute("DROP TABLE IF EXISTS artifact_search")
    else:
        op.execute("DROP INDEX IF EXISTS ix_artifacts_search")
        op.execute("DROP TRIGGER IF EXISTS artifacts_search ON artifacts")
        op.execute("DROP FUNCTION IF EXISTS artifacts_search_vector()")
        op.execute("ALTER TABLE artifacts DROP COLUMN IF EXISTS search")
    with op.batch_alter_table("alerts", schema=None) as batch_op:
        batch_op.drop_index("ix_alerts_kind_created_at")
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index("ix_artifacts_status_ingested_at")
    op.drop_table("sla_day_buckets")
    op.drop_table("sla_days")
