"""the dashboard for its people: decision history, audit names, backlog samples, duplicate lookups

- batch_decisions: every decision on a failed batch (approved, rejected, timed out) with its attempt, actor and
  reason; the batches row keeps only the last one. Filled here from the audit log's decision events.
- audit_events.target_name: the name of what an event is about (a source's name, "batch 12 of advisories"),
  written with the event, so the log stays readable once the source is deleted.
- queue_samples: each task queue's backlog and its age, sampled by the dashboard when no Prometheus is
  configured, for the Workers page's history.
- artifacts (duplicate_of_id), (near_duplicate_of_id): a document's duplicates, found from the original.
  (create_index only: the artifacts table is not rebuilt, so migration 0006's search triggers stay.)

Revision ID: 0007
Revises: 0006
Create Date: 2026-12-02 09:00:00.000000
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0007"
down_revision: str | None = "0006"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None

DECISION_ACTIONS = {"approve": "approved", "reject": "rejected", "reject_by_timeout": "timed_out"}


def upgrade() -> None:
    op.create_table(
        "batch_decisions",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("batch_id", sa.Integer(), nullable=False),
        sa.Column("attempt", sa.Integer(), nullable=True),
        sa.Column("decision", sa.String(length=20), nullable=False),
        sa.Column("actor", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("decided_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["batch_id"],
            ["batches.id"],
            name=op.f("fk_batch_decisions_batch_id_batches"),
            ondelete="CASCADE",
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_batch_decisions")),
    )
    op.create_index(
        "ix_batch_decisions_batch_decided", "batch_decisions", ["batch_id", "decided_at"], unique=False
    )
    op.create_index(op.f("ix_batch_decisions_decided_at"), "batch_decisions", ["decided_at"], unique=False)
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.add_column(sa.Column("target_name", sa.String(length=500), nullable=True))
    op.create_table(
        "queue_samples",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("sampled_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("queue", sa.String(length=200), nullable=False),
        sa.Column("task_type", sa.String(length=20), nullable=False),
        sa.Column("backlog", sa.Integer(), nullable=False),
        sa.Column("backlog_age_s", sa.Float(), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_queue_samples")),
    )
    op.create_index(op.f("ix_queue_samples_sampled_at"), "queue_samples", ["sampled_at"], unique=False)
    op.create_index(op.f("ix_artifacts_duplicate_of_id"), "artifacts", ["duplicate_of_id"], unique=False)
    op.create_index(
        op.f("ix_artifacts_near_duplicate_of_id"), "artifacts", ["near_duplicate_of_id"], unique=False
    )
    _decisions_from_audit()


def _decisions_from_audit() -> None:
    """The decisions the audit log recorded (target "batch:ID"), for batches that still exist."""
    bind = op.get_bind()
    batches = {row[0] for row in bind.execute(sa.text("SELECT id FROM batches"))}
    events = bind.execute(
        sa.text(
            "SELECT actor, action, target, reason, created_at FROM audit_events "
            "WHERE action IN ('approve', 'reject', 'reject_by_timeout') AND target LIKE 'batch:%' ORDER BY id"
        )
    ).all()
    rows = []
    for actor, action, target, reason, created_at in events:
        ref = target.removeprefix("batch:")
        if ref.isdigit() and int(ref) in batches:
            rows.append(
                {
                    "batch_id": int(ref),
                    "decision": DECISION_ACTIONS[action],
                    "actor": actor,
                    "reason": reason,
                    "decided_at": created_at,
                }
            )
    if rows:
        bind.execute(
            sa.text(
                "INSERT INTO batch_decisions (batch_id, decision, actor, reason, decided_at) "
                "VALUES (:batch_id, :decision, :actor, :reason, :decided_at)"
            ),
            rows,
        )


def downgrade() -> None:
    op.drop_index(op.f("ix_artifacts_near_duplicate_of_id"), table_name="artifacts")
    op.drop_index(op.f("ix_artifacts_duplicate_of_id"), table_name="artifacts")
    op.drop_index(op.f("ix_queue_samples_sampled_at"), table_name="queue_samples")
    op.drop_table("queue_samples")
    with op.batch_alter_table("audit_events", schema=None) as batch_op:
        batch_op.drop_column("target_name")
    op.drop_index(op.f("ix_batch_decisions_decided_at"), table_name="batch_decisions")
    op.drop_index("ix_batch_decisions_batch_decided", table_name="batch_decisions")
    op.drop_table("batch_decisions")
