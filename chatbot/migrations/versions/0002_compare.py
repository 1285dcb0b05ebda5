"""Comparisons: one question over models × strategies, with notes per answer.

Revision ID: 0002
Revises: 0001
"""

import sqlalchemy as sa
from alembic import op

revision = "0002"
down_revision = "0001"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.create_table(
        "comparison",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("persona", sa.String, nullable=False),
        sa.Column("question", sa.Text, nullable=False),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_table(
        "comparison_answer",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "comparison_id", sa.Integer,
            sa.ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("position", sa.Integer, nullable=False),
        sa.Column("backend", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("strategy", sa.String, nullable=False),
        sa.Column("adapter", sa.String),
        sa.Column("answer", sa.Text, nullable=False),
        sa.Column("notes", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("tokens", sa.Integer),
        sa.Column("ttft_s", sa.Float),
        sa.Column("tok_per_s", sa.Float),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_comparison_answer_comparison_id", "comparison_answer", ["comparison_id"])


def downgrade() -> None:
    op.drop_index("ix_comparison_answer_comparison_id", table_name="comparison_answer")
    op.drop_table("comparison_answer")
    op.drop_table("comparison")
