"""SLA rollup days in the configured time zone.

Each rollup row says which zone its day is a calendar day of; the rollups are rebuilt in LOREGUARD_TIMEZONE
(0006 built them in UTC days).

The rebuild is written out here against the tables as they are at this revision (not the models, not
data.repository), so a later change to the live rollup code cannot change what this migration does.

Revision ID: 0008
Revises: 0007
"""

import math
from collections.abc import Sequence
from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo

import sqlalchemy as sa
from alembic import op

revision: str = "0008"
down_revision: str | None = "0007"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

FINISHED = ("completed", "failed")  # batch statuses whose documents count
STORED = "stored"  # the artifact status of a stored document
PER_LN = 8 / math.log(2)  # histogram buckets: edges at 2^(k/8) s


class _UTC(sa.types.TypeDecorator):
    """UTC datetimes as the library stores them: naive on SQLite, timezone-aware on PostgreSQL."""

    impl = sa.DateTime(timezone=True)
    cache_ok = True

    def process_bind_param(self, value, dialect):
        if value is None:
            return None
        value = value.astimezone(UTC)
        return value.replace(tzinfo=None) if dialect.name == "sqlite" else value

    def process_result_value(self, value, dialect):
        if value is None:
            return None
        return value.replace(tzinfo=UTC) if value.tzinfo is None else value.astimezone(UTC)


BATCHES = sa.table(
    "batches",
    sa.column("id", sa.Integer),
    sa.column("source_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("started_at", _UTC()),
)
ARTIFACTS = sa.table(
    "artifacts",
    sa.column("batch_id", sa.Integer),
    sa.column("status", sa.String),
    sa.column("stored_at", _UTC()),
)
SLA_DAYS = sa.table(
    "sla_days",
    sa.column("day", sa.Date),
    sa.column("source_id", sa.Integer),
    sa.column("batches", sa.Integer),
    sa.column("documents", sa.Integer),
    sa.column("stored", sa.Integer),
    sa.column("failed", sa.Integer),
    sa.column("on_time", sa.Integer),
    sa.column("target_hours", sa.Float),
    sa.column("zone", sa.String),
    sa.column("updated_at", _UTC()),
)
SLA_DAY_BUCKETS = sa.table(
    "sla_day_buckets",
    sa.column("day", sa.Date),
    sa.column("source_id", sa.Integer),
    sa.column("bucket", sa.SmallInteger),
    sa.column("documents", sa.Integer),
)


def upgrade() -> None:
    with op.batch_alter_table("sla_days", schema=None) as batch_op:
        batch_op.add_column(sa.Column("zone", sa.String(length=64), nullable=False, server_default="UTC"))

    from core.settings import Settings

    settings = Settings()
    rebuild(op.get_bind(), target_hours=settings.sla_target_hours, zone=settings.timezone)


def downgrade() -> None:
    with op.batch_alter_table("sla_days", schema=None) as batch_op:
        batch_op.drop_column("zone")


def rebuild(conn, *, target_hours, zone):
    """Every source-day of finished batches, counted in calendar days of `zone`: its batches and documents,
    those stored (on time: within `target_hours` of their batch's start) and the rest (late), and a histogram
    of the stored documents' processing times (bucket k: (2^((k-1)/8), 2^(k/8)] s, bucket 0 up to 1 s)."""
    conn.execute(sa.delete(SLA_DAY_BUCKETS))
    conn.execute(sa.delete(SLA_DAYS))
    tz = ZoneInfo(zone)
    started = conn.execute(
        sa.select(BATCHES.c.source_id, BATCHES.c.started_at).where(
            BATCHES.c.status.in_(FINISHED), BATCHES.c.started_at.is_not(None)
        )
    )
    days = {(source_id, at.astimezone(tz).date()) for source_id, at in started}
    seconds: sa.ColumnElement  # processing seconds of a stored document: stored_at - its batch's started_at
    if conn.dialect.name == "sqlite":  # julianday: float days; rounded to the millisecond
        seconds = sa.func.round(
            (sa.func.julianday(ARTIFACTS.c.stored_at) - sa.func.julianday(BATCHES.c.started_at)) * 86400.0, 3
        )
    else:
        seconds = sa.cast(sa.func.extract("epoch", ARTIFACTS.c.stored_at - BATCHES.c.started_at), sa.Float)
    stored = (ARTIFACTS.c.status == STORED) & ARTIFACTS.c.stored_at.is_not(None)
    histogram = sa.case((seconds <= 1, 0), else_=sa.func.ceil(sa.func.ln(seconds) * PER_LN - 1e-9))
    bucket = sa.case((stored, histogram))
    on_time = sa.func.sum(sa.case((stored & (seconds <= target_hours * 3600), 1), else_=0))
    now = datetime.now(UTC)
    for source_id, day in sorted(days):
        start = datetime.combine(day, time.min, tz)
        end = datetime.combine(day + timedelta(days=1), time.min, tz)
        in_day = (
            BATCHES.c.source_id == source_id,
            BATCHES.c.started_at >= start,
            BATCHES.c.started_at < end,
            BATCHES.c.status.in_(FINISHED),
        )
        batches = conn.scalar(sa.select(sa.func.count()).select_from(BATCHES).where(*in_day))
        rows = conn.execute(
            sa.select(bucket, sa.func.count(), on_time)
            .select_from(ARTIFACTS.join(BATCHES, BATCHES.c.id == ARTIFACTS.c.batch_id))
            .where(*in_day)
            .group_by(bucket)
        ).all()
        documents = sum(int(n) for _, n, _ in rows)
        stored_n = sum(int(n) for b, n, _ in rows if b is not None)
        conn.execute(
            sa.insert(SLA_DAYS).values(
                day=day,
                source_id=source_id,
                batches=int(batches),
                documents=documents,
                stored=stored_n,
                failed=documents - stored_n,
                on_time=sum(int(ok or 0) for _, _, ok in rows),
                target_hours=target_hours,
                zone=zone,
                updated_at=now,
            )
        )
        buckets = [
            {"day": day, "source_id": source_id, "bucket": int(b), "documents": int(n)}
            for b, n, _ in rows
            if b is not None
        ]
        if buckets:
            conn.execute(sa.insert(SLA_DAY_BUCKETS), buckets)
