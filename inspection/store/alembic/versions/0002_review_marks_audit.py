"""Review marks, not-gradable flag and audit samples; the review queue's candidates and scan state.

``reviews`` gains ``marks`` (JSON, NULL for reviews without marks: every review before this),
``not_gradable_reason`` (NULL) and ``audit`` (false). ``review_candidates`` holds the inspections in
the review queue (flagged or drawn as an audit sample) with their review value;
``review_queue_state`` how far the queue has scanned the inspections (by evidence seq). Both are
filled by the service as it runs, also for inspections recorded before this revision.

Revision ID: 0002
Revises: 0001
Create Date: 2026-12-20
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0002"
down_revision: str | Sequence[str] | None = "0001"
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:  # JSON everywhere, JSONB on PostgreSQL
    json: sa.types.TypeEngine[object] = sa.JSON()
    return json.with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def upgrade() -> None:
    """Add the review columns and the two queue tables."""
    with op.batch_alter_table("reviews") as batch:
        batch.add_column(sa.Column("marks", _json(), nullable=True))
        batch.add_column(sa.Column("not_gradable_reason", sa.Text(), nullable=True))
        batch.add_column(sa.Column("audit", sa.Boolean(), server_default=sa.false(), nullable=False))
    op.create_table(
        "review_candidates",
        sa.Column("inspection_id", sa.String(length=36), nullable=False),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=False),
        sa.Column("flagged", sa.Boolean(), nullable=False),
        sa.Column("audit", sa.Boolean(), nullable=False),
        sa.Column("audit_rate", sa.Float(), nullable=True),
        sa.Column("value", sa.Float(), nullable=False),
        sa.Column("ood_score", sa.Float(), nullable=True),
        sa.Column("added_at", sa.DateTime(timezone=True), nullable=False),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_review_candidates_inspection_id_inspections")
        ),
        sa.PrimaryKeyConstraint("inspection_id", name=op.f("pk_review_candidates")),
    )
    op.create_index(
        op.f("ix_review_candidates_evidence_seq"), "review_candidates", ["evidence_seq"], unique=False
    )
    op.create_table(
        "review_queue_state",
        sa.Column("id", sa.Integer(), autoincrement=False, nullable=False),
        sa.Column("scanned_seq", sa.BigInteger(), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_review_queue_state")),
    )


def downgrade() -> None:
    """Drop the queue tables and the review columns."""
    op.drop_table("review_queue_state")
    op.drop_index(op.f("ix_review_candidates_evidence_seq"), table_name="review_candidates")
    op.drop_table("review_candidates")
    with op.batch_alter_table("reviews") as batch:
        batch.drop_column("audit")
        batch.drop_column("not_gradable_reason")
        batch.drop_column("marks")
