"""SLA rollup days in the configured time zone.

Each rollup row says which zone its day is a calendar day of; the rollups are rebuilt in LOREGUARD_TIMEZONE
(0006 built them in UTC days).

Revision ID: 0008
Revises: 0007
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.orm import Session

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("sla_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zone", sa.String(length=64), nullable=False, server_default="UTC"))

    from core.settings import Settings
    from data.repository.sla import rebuild_sla_rollups

    settings = Settings()
    with Session(bind=op.get_bind()) as session:
        rebuild_sla_rollups(session, target_hours=settings.sla_target_hours, zone=settings.timezone)
        session.flush()


def downgrade() -> None:
    with op.batch_alter_table("sla_days", schema=None) as batch_op:
        batch_op.drop_column("zone")
