"""Initial schema: machines, images, inspections, evidence ledger, reviews, recommendations, API keys.

The whole schema in one revision so that later migrations build on a single base. Self-contained
(it does not import the models), as migrations must be.

Revision ID: 0001
Revises:
Create Date: 2025-11-25
"""

from __future__ import annotations

from collections.abc import Sequence

import sqlalchemy as sa
from alembic import op
from sqlalchemy.dialects import postgresql

revision: str = "0001"
down_revision: str | Sequence[str] | None = None
branch_labels: str | Sequence[str] | None = None
depends_on: str | Sequence[str] | None = None


def _json() -> sa.types.TypeEngine[object]:  # JSON everywhere, JSONB on PostgreSQL
    json: sa.types.TypeEngine[object] = sa.JSON()
    return json.with_variant(postgresql.JSONB(astext_type=sa.Text()), "postgresql")


def _ts(name: str, nullable: bool = False) -> sa.Column[object]:
    return sa.Column(name, sa.DateTime(timezone=True), nullable=nullable)


def upgrade() -> None:
    """Create every table of the store."""
    op.create_table(
        "api_keys",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("name", sa.String(length=128), nullable=False),
        sa.Column("role", sa.String(length=16), nullable=False),
        sa.Column("key_hash", sa.String(length=128), nullable=False),
        sa.Column("station_id", sa.String(length=128), nullable=True),
        _ts("created_at"),
        _ts("revoked_at", nullable=True),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_api_keys")),
        sa.UniqueConstraint("key_hash", name=op.f("uq_api_keys_key_hash")),
    )
    op.create_table(
        "evidence_keys",
        sa.Column("key_id", sa.String(length=16), nullable=False),
        sa.Column("station_id", sa.String(length=128), nullable=True),
        sa.Column("public_key_pem", sa.Text(), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("key_id", name=op.f("pk_evidence_keys")),
    )
    op.create_table(
        "images",
        sa.Column("sha256", sa.String(length=64), nullable=False),
        sa.Column("bytes", sa.BigInteger(), nullable=False),
        sa.Column("width", sa.Integer(), nullable=True),
        sa.Column("height", sa.Integer(), nullable=True),
        sa.Column("media_type", sa.String(length=64), nullable=False),
        sa.Column("path", sa.String(length=255), nullable=False),
        _ts("created_at"),
        sa.PrimaryKeyConstraint("sha256", name=op.f("pk_images")),
    )
    op.create_table(
        "machines",
        sa.Column("serial", sa.String(length=128), nullable=False),
        sa.Column("model", sa.String(length=128), nullable=True),
        sa.Column("firmware", sa.String(length=128), nullable=True),
        _ts("first_seen"),
        sa.PrimaryKeyConstraint("serial", name=op.f("pk_machines")),
    )
    op.create_table(
        "evidence_records",
        sa.Column("seq", sa.BigInteger(), autoincrement=False, nullable=False),
        sa.Column("record_id", sa.String(length=36), nullable=False),
        sa.Column("kind", sa.String(length=64), nullable=False),
        _ts("created_at"),
        sa.Column("payload", sa.Text(), nullable=False),
        sa.Column("prev_hash", sa.String(length=64), nullable=False),
        sa.Column("record_hash", sa.String(length=64), nullable=False),
        sa.Column("signature", sa.String(length=128), nullable=True),
        sa.Column("key_id", sa.String(length=16), nullable=True),
        sa.ForeignKeyConstraint(
            ["key_id"], ["evidence_keys.key_id"], name=op.f("fk_evidence_records_key_id_evidence_keys")
        ),
        sa.PrimaryKeyConstraint("seq", name=op.f("pk_evidence_records")),
        sa.UniqueConstraint("record_hash", name=op.f("uq_evidence_records_record_hash")),
        sa.UniqueConstraint("record_id", name=op.f("uq_evidence_records_record_id")),
    )
    op.create_index(op.f("ix_evidence_records_kind"), "evidence_records", ["kind"], unique=False)
    op.create_table(
        "inspections",
        sa.Column("id", sa.String(length=36), nullable=False),
        _ts("created_at"),
        sa.Column("image_sha256", sa.String(length=64), nullable=False),
        sa.Column("station_id", sa.String(length=128), nullable=True),
        sa.Column("machine_serial", sa.String(length=128), nullable=True),
        sa.Column("part_id", sa.String(length=128), nullable=True),
        sa.Column("seam_id", sa.String(length=128), nullable=True),
        sa.Column("operator_id", sa.String(length=128), nullable=True),
        sa.Column("process", sa.String(length=32), nullable=True),
        sa.Column("material", sa.String(length=64), nullable=True),
        sa.Column("thickness_mm", sa.Float(), nullable=True),
        sa.Column("params", _json(), nullable=False),
        sa.Column("porosity_grade", sa.Integer(), nullable=True),
        sa.Column("spatter_grade", sa.Integer(), nullable=True),
        sa.Column("needs_review", sa.Boolean(), nullable=False),
        sa.Column("result", _json(), nullable=False),
        sa.Column("model_name", sa.String(length=128), nullable=False),
        sa.Column("model_version", sa.String(length=64), nullable=False),
        sa.Column("model_sha256", sa.String(length=64), nullable=False),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=True),
        sa.Column("idempotency_key", sa.String(length=255), nullable=True),
        sa.ForeignKeyConstraint(
            ["evidence_seq"],
            ["evidence_records.seq"],
            name=op.f("fk_inspections_evidence_seq_evidence_records"),
        ),
        sa.ForeignKeyConstraint(
            ["image_sha256"], ["images.sha256"], name=op.f("fk_inspections_image_sha256_images")
        ),
        sa.ForeignKeyConstraint(
            ["machine_serial"], ["machines.serial"], name=op.f("fk_inspections_machine_serial_machines")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_inspections")),
        sa.UniqueConstraint("idempotency_key", name=op.f("uq_inspections_idempotency_key")),
    )
    op.create_index(op.f("ix_inspections_created_at"), "inspections", ["created_at"], unique=False)
    op.create_index(op.f("ix_inspections_image_sha256"), "inspections", ["image_sha256"], unique=False)
    op.create_index(
        "ix_inspections_machine_serial_created_at",
        "inspections",
        ["machine_serial", "created_at"],
        unique=False,
    )
    op.create_index(op.f("ix_inspections_part_id"), "inspections", ["part_id"], unique=False)
    op.create_index(op.f("ix_inspections_station_id"), "inspections", ["station_id"], unique=False)
    op.create_table(
        "recommendations",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("inspection_id", sa.String(length=36), nullable=False),
        sa.Column("machine_serial", sa.String(length=128), nullable=True),
        sa.Column("rule_id", sa.String(length=128), nullable=False),
        sa.Column("parameter", sa.String(length=128), nullable=False),
        sa.Column("current_value", sa.Float(), nullable=True),
        sa.Column("new_value", sa.Float(), nullable=True),
        sa.Column("payload", _json(), nullable=False),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_recommendations_inspection_id_inspections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendations")),
    )
    op.create_index(
        op.f("ix_recommendations_inspection_id"), "recommendations", ["inspection_id"], unique=False
    )
    op.create_index(
        op.f("ix_recommendations_machine_serial"), "recommendations", ["machine_serial"], unique=False
    )
    op.create_table(
        "reviews",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("inspection_id", sa.String(length=36), nullable=False),
        sa.Column("reviewer", sa.String(length=128), nullable=False),
        sa.Column("porosity_grade", sa.Integer(), nullable=True),
        sa.Column("spatter_grade", sa.Integer(), nullable=True),
        sa.Column("comment", sa.Text(), nullable=False),
        sa.Column("evidence_seq", sa.BigInteger(), nullable=True),
        _ts("created_at"),
        sa.ForeignKeyConstraint(
            ["evidence_seq"], ["evidence_records.seq"], name=op.f("fk_reviews_evidence_seq_evidence_records")
        ),
        sa.ForeignKeyConstraint(
            ["inspection_id"], ["inspections.id"], name=op.f("fk_reviews_inspection_id_inspections")
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_reviews")),
    )
    op.create_index(op.f("ix_reviews_inspection_id"), "reviews", ["inspection_id"], unique=False)
    op.create_table(
        "recommendation_outcomes",
        sa.Column("id", sa.String(length=36), nullable=False),
        sa.Column("recommendation_id", sa.String(length=36), nullable=False),
        sa.Column("applied_inspection_id", sa.String(length=36), nullable=True),
        sa.Column("before_rate", sa.Float(), nullable=True),
        sa.Column("after_rate", sa.Float(), nullable=True),
        sa.Column("p_value", sa.Float(), nullable=True),
        sa.Column("worked", sa.Boolean(), nullable=True),
        _ts("computed_at"),
        sa.ForeignKeyConstraint(
            ["applied_inspection_id"],
            ["inspections.id"],
            name=op.f("fk_recommendation_outcomes_applied_inspection_id_inspections"),
        ),
        sa.ForeignKeyConstraint(
            ["recommendation_id"],
            ["recommendations.id"],
            name=op.f("fk_recommendation_outcomes_recommendation_id_recommendations"),
        ),
        sa.PrimaryKeyConstraint("id", name=op.f("pk_recommendation_outcomes")),
    )
    op.create_index(
        op.f("ix_recommendation_outcomes_recommendation_id"),
        "recommendation_outcomes",
        ["recommendation_id"],
        unique=False,
    )


def downgrade() -> None:
    """Drop every table (children first)."""
    for table in (
        "recommendation_outcomes",
        "reviews",
        "recommendations",
        "inspections",
        "evidence_records",
        "machines",
        "images",
        "evidence_keys",
        "api_keys",
    ):
        op.drop_table(table)
