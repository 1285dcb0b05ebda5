"""Database tables (sqlmodel). Schema changes go through chatbot/migrations, in order."""

from datetime import UTC, datetime

from sqlalchemy import JSON, Column, DateTime, ForeignKey, Integer, String, Text
from sqlmodel import Field, SQLModel

MESSAGE_STATUSES = ("complete", "interrupted", "error")
ANSWER_STATUSES = ("pending", "complete", "interrupted", "error")  # comparison answers


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
    # debate panel: "all" answer each turn, or "round-robin"; per-critic overrides
    # {persona: {"tone": ..., "model": ..., "strategy": ...}}
    turn_order: str = Field(
        default="all", sa_column=Column(String, nullable=False, server_default="all"))
    critic_settings: dict = Field(
        default_factory=dict, sa_column=Column(JSON, nullable=False, server_default="{}"))
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


class Comparison(SQLModel, table=True):
    """One user message run over several models × strategies (the original study's method)."""

    id: int | None = Field(default=None, primary_key=True)
    persona: str
    question: str = Field(sa_column=Column(Text, nullable=False))
    title: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class ComparisonAnswer(SQLModel, table=True):
    __tablename__ = "comparison_answer"

    id: int | None = Field(default=None, primary_key=True)
    comparison_id: int = Field(
        sa_column=Column(
            Integer, ForeignKey("comparison.id", ondelete="CASCADE"), nullable=False, index=True
        )
    )
    position: int = 0
    backend: str
    model: str
    strategy: str
    adapter: str | None = None  # LoRA adapter GGUF applied on top of the model (embedded)
    answer: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    notes: str = Field(default="", sa_column=Column(Text, nullable=False, default=""))
    status: str = "complete"
    tokens: int | None = None
    ttft_s: float | None = None
    tok_per_s: float | None = None
    error: str | None = Field(default=None, sa_column=Column(Text, nullable=True))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class Judgement(SQLModel, table=True):
    """The judge's view of one critic after one user message: score and objection ledger."""

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(sa_column=Column(
        Integer, ForeignKey("chat_session.id", ondelete="CASCADE"), nullable=False, index=True))
    message_id: int = Field(sa_column=Column(
        Integer, ForeignKey("message.id", ondelete="CASCADE"), nullable=False, index=True))
    persona: str
    score: int
    objections: list[dict] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    notes: list[str] = Field(default_factory=list, sa_column=Column(JSON, nullable=False))
    judge_backend: str | None = None
    judge_model: str | None = None
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())


class Review(SQLModel, table=True):
    """The report at the end of a session: Markdown for people, data for the progress view."""

    id: int | None = Field(default=None, primary_key=True)
    session_id: int = Field(sa_column=Column(
        Integer, ForeignKey("chat_session.id", ondelete="CASCADE"), nullable=False, index=True))
    markdown: str = Field(sa_column=Column(Text, nullable=False))
    data: dict = Field(default_factory=dict, sa_column=Column(JSON, nullable=False))
    created_at: datetime = Field(default_factory=utcnow, sa_column=_timestamp())
