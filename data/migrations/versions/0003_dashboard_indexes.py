"""dashboard indexes

Indexes for the dashboard's SQL aggregates and pages over a large library:
- artifacts (status, stored_at): throughput buckets and "stored since" counts read the index alone, and the
  library's newest-first pages walk it in order;
- artifacts (source_id, status, stored_at): the library filtered by source, newest first;
- artifacts (language): the language filter and its option list (a loose index scan).

Revision ID: 0003
Revises: 0002
Create Date: 2026-11-28 01:00:00.000000
"""

from collections.abc import Sequence

from alembic import op

revision: str = "0003"
down_revision: str | None = "0002"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.create_index("ix_artifacts_status_stored_at", ["status", "stored_at"], unique=False)
        batch_op.create_index(
            "ix_artifacts_source_status_stored", ["source_id", "status", "stored_at"], unique=False
        )
        batch_op.create_index("ix_artifacts_language", ["language"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("artifacts", schema=None) as batch_op:
        batch_op.drop_index("ix_artifacts_language")
        batch_op.drop_index("ix_artifacts_source_status_stored")
        batch_op.drop_index("ix_artifacts_status_stored_at")
