"""Why a batch skipped what it did not gather (issue 23): batches.skip_reasons, reason -> count, e.g.
{"unsupported file type .xyz": 2, "over the per-batch limit (LOREGUARD_MAX_DOCUMENTS_PER_BATCH)": 10}.
Its counts add up to batches.skipped; NULL on batches ingested before this (their skipped were over the limit).

Revision ID: 0014
Revises: 0013
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0014"
down_revision: str | None = "0013"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    op.add_column("batches", sa.Column("skip_reasons", sa.JSON(), nullable=True))  # in place, no table copy


def downgrade() -> None:
    op.drop_column("batches", "skip_reasons")
