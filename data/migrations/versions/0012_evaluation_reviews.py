"""A person's review of an evaluator's verdict, kept beside it; readers' reports of verdicts that look wrong.

`label` stays the label the library shows (the effective one); `model_label` is what the evaluator said. A
review sets `label` to the person's choice and records who, when and why; a later evaluation of the document
updates `model_label` and leaves the person's `label` alone. `needs_review` marks the review inbox: set when the
evaluator said "review" or was unsure, or a reader reported the verdict; cleared by a review.

Revision ID: 0012
Revises: 0009
"""

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op

revision: str = "0012"
down_revision: str | None = "0009"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def upgrade() -> None:
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.add_column(sa.Column("model_label", sa.String(length=50), nullable=True))
        batch_op.add_column(
            sa.Column("needs_review", sa.Boolean(), nullable=False, server_default=sa.false())
        )
        batch_op.add_column(sa.Column("reviewed_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("reviewed_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("review_reason", sa.Text(), nullable=True))
        batch_op.add_column(sa.Column("reported_by", sa.String(length=200), nullable=True))
        batch_op.add_column(sa.Column("reported_at", sa.DateTime(timezone=True), nullable=True))
        batch_op.add_column(sa.Column("report_note", sa.Text(), nullable=True))
        batch_op.create_index("ix_evaluations_needs_review", ["needs_review", "created_at"], unique=False)
        batch_op.create_index("ix_evaluations_reviewed_at", ["reviewed_at"], unique=False)
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        # Which re-evaluation last judged the document (a re-run after a crash skips what it already did), and
        # the tokens a model evaluator's API reported for it.
        batch_op.add_column(sa.Column("reevaluation_id", sa.Integer(), nullable=True))
        batch_op.add_column(sa.Column("tokens", sa.Integer(), nullable=True))
    op.create_table(
        "reevaluations",
        sa.Column("id", sa.Integer(), nullable=False),
        sa.Column("scope", sa.JSON(), nullable=False),
        sa.Column("description", sa.String(length=500), nullable=False),
        sa.Column("status", sa.String(length=20), nullable=False),
        sa.Column("total", sa.Integer(), nullable=False),
        sa.Column("done", sa.Integer(), nullable=False),
        sa.Column("tokens", sa.Integer(), nullable=False),
        sa.Column("evaluator", sa.String(length=50), nullable=False),
        sa.Column("model", sa.String(length=200), nullable=True),
        sa.Column("topics_version", sa.String(length=32), nullable=True),
        sa.Column("workflow_id", sa.String(length=200), nullable=True),
        sa.Column("started_by", sa.String(length=200), nullable=False),
        sa.Column("reason", sa.Text(), nullable=True),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("finished_at", sa.DateTime(timezone=True), nullable=True),
        sa.PrimaryKeyConstraint("id"),
    )
    op.create_index("ix_reevaluations_status", "reevaluations", ["status"], unique=False)
    # Plain SQL on the table as it is now: a migration must not call live repository code.
    op.execute("UPDATE evaluations SET model_label = label")
    op.execute("UPDATE evaluations SET needs_review = (label = 'review')")


def downgrade() -> None:
    op.drop_index("ix_reevaluations_status", table_name="reevaluations")
    op.drop_table("reevaluations")
    with op.batch_alter_table("evaluations", schema=None) as batch_op:
        batch_op.drop_index("ix_evaluations_reviewed_at")
        batch_op.drop_index("ix_evaluations_needs_review")
        for name in (
            "tokens",
            "reevaluation_id",
            "report_note",
            "reported_at",
            "reported_by",
            "review_reason",
            "reviewed_at",
            "reviewed_by",
            "needs_review",
            "model_label",
        ):
            batch_op.drop_column(name)
