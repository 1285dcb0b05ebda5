"""Debate: panel settings per session, the judge's ledger, review reports.

Revision ID: 0003
Revises: 0002
"""

import sqlalchemy as sa
from alembic import op

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    with op.batch_alter_table("chat_session") as batch:
        batch.add_column(sa.Column("turn_order", sa.String, nullable=False, server_default="all"))
        batch.add_column(
            sa.Column("critic_settings", sa.JSON, nullable=False, server_default="{}"))
    op.create_table(
        "judgement",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer,
                  sa.ForeignKey("chat_session.id", ondelete="CASCADE"), nullable=False),
        sa.Column("message_id", sa.Integer,
                  sa.ForeignKey("message.id", ondelete="CASCADE"), nullable=False),
        sa.Column("persona", sa.String, nullable=False),
        sa.Column("score", sa.Integer, nullable=False),
        sa.Column("objections", sa.JSON, nullable=False),
        sa.Column("notes", sa.JSON, nullable=False),
        sa.Column("judge_backend", sa.String),
        sa.Column("judge_model", sa.String),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_judgement_session_id", "judgement", ["session_id"])
    op.create_index("ix_judgement_message_id", "judgement", ["message_id"])
    op.create_table(
        "review",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("session_id", sa.Integer,
                  sa.ForeignKey("chat_session.id", ondelete="CASCADE"), nullable=False),
        sa.Column("markdown", sa.Text, nullable=False),
        sa.Column("data", sa.JSON, nullable=False),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_review_session_id", "review", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_review_session_id", table_name="review")
    op.drop_table("review")
    op.drop_index("ix_judgement_message_id", table_name="judgement")
    op.drop_index("ix_judgement_session_id", table_name="judgement")
    op.drop_table("judgement")
    with op.batch_alter_table("chat_session") as batch:
        batch.drop_column("critic_settings")
        batch.drop_column("turn_order")
