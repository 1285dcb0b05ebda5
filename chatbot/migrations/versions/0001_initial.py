"""Goals, sessions and messages.

Revision ID: 0001
Revises:
"""

import sqlalchemy as sa
from alembic import op

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def _timestamps() -> list[sa.Column]:
    return [
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
        sa.Column("updated_at", sa.DateTime(timezone=True), nullable=False),
    ]


def upgrade() -> None:
    op.create_table(
        "goal",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("description", sa.Text, nullable=False),
        sa.Column("constraints", sa.Text, nullable=False),
        sa.Column("evidence", sa.Text, nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "chat_session",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column("goal_id", sa.Integer, sa.ForeignKey("goal.id", ondelete="SET NULL")),
        sa.Column("title", sa.Text, nullable=False),
        sa.Column("personas", sa.JSON, nullable=False),
        sa.Column("backend", sa.String, nullable=False),
        sa.Column("model", sa.String, nullable=False),
        sa.Column("strategy", sa.String, nullable=False),
        *_timestamps(),
    )
    op.create_table(
        "message",
        sa.Column("id", sa.Integer, primary_key=True),
        sa.Column(
            "session_id", sa.Integer,
            sa.ForeignKey("chat_session.id", ondelete="CASCADE"), nullable=False,
        ),
        sa.Column("role", sa.String, nullable=False),
        sa.Column("persona", sa.String),
        sa.Column("content", sa.Text, nullable=False),
        sa.Column("status", sa.String, nullable=False),
        sa.Column("model", sa.String),
        sa.Column("backend", sa.String),
        sa.Column("strategy", sa.String),
        sa.Column("tokens", sa.Integer),
        sa.Column("prompt_tokens", sa.Integer),
        sa.Column("ttft_s", sa.Float),
        sa.Column("tok_per_s", sa.Float),
        sa.Column("stop_reason", sa.String),
        sa.Column("error", sa.Text),
        sa.Column("created_at", sa.DateTime(timezone=True), nullable=False),
    )
    op.create_index("ix_message_session_id", "message", ["session_id"])


def downgrade() -> None:
    op.drop_index("ix_message_session_id", table_name="message")
    op.drop_table("message")
    op.drop_table("chat_session")
    op.drop_table("goal")
