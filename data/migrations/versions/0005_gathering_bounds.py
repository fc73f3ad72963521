"""gathering bounds

Two counts on a batch (issue 11):
- batches.skipped: documents of the source past LOREGUARD_MAX_DOCUMENTS_PER_BATCH, not gathered;
- batches.unchanged: documents whose content the source had already stored in an earlier batch, not stored twice.

Revision ID: 0005
Revises: 0004
Create Date: 2026-12-01 00:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0005"
down_revision: str | None = "0004"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.add_column(sa.Column("skipped", sa.Integer(), server_default="0", nullable=False))
        batch_op.add_column(sa.Column("unchanged", sa.Integer(), server_default="0", nullable=False))


def downgrade() -> None:
    with op.batch_alter_table("batches", schema=None) as batch_op:
        batch_op.drop_column("unchanged")
        batch_op.drop_column("skipped")
