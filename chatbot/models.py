"""Database tables (sqlmodel). Schema changes go through chatbot/migrations, in order."""

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, Text
from sqlmodel import Field, SQLModel

MESSAGE_STATUSES = ("complete", "interrupted", "error")


def utcnow() -> datetime:
    return datetime.now(UTC)


def _timestamp() -> Column:
    return Column(DateTime(timezone=True), nullable=False, default=utcnow)


class Goal(SQLModel, table=True):
    id: int | None = Field(default=None, primary_key=True)
    title: str = Field(sa_column=Column(Text, nullable=False))
    description: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    constraints: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    evidence: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class ChatSession(SQLModel, table=True):
    __tablename__ = "chat_session"

    id: int | None = Field(default=None, primary_key=True)
    goal_id: int | None = Field(
        default=None,
        sa_column=Column(Integer, ForeignKey("goal.id", ondelete="SET NULL"), nullable=True),
    )
    title: str = Field(sa_column=Column(Text, nullable=False))
    personas: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    backend: str
    model: str
    strategy: str
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
    updated_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class ChatMessage(SQLModel, table=True):
    __tablename__ = "message"

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("chat_session.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    role: str  # user | assistant
    persona: str | None = None
    content: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = "complete"
    model: str | None = None
    backend: str | None = None
    strategy: str | None = None
    tokens: int | None = None
    prompt_tokens: int | None = None
    ttft_s: float | None = None
    tok_per_s: float | None = None
    stop_reason: str | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
