"""Each evaluation records the version of the topics it was made against, so stale verdicts can be found.

Revision ID: 0009
Revises: 0008
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0009"
down_revision: str | None = "0008"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("topics_version", sa.String(length=32), nullable=True))
        batch_op.create_index("ix_evaluations_topics_version", ["topics_version"], unique=False)


def downgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_topics_version")
        batch_op.drop_column("topics_version")
