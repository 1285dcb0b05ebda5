"""Sessions, goals and messages in SQL (SQLite by default, PostgreSQL by URL).

The database is the source of truth: every message is committed as soon as it exists, and a
reply being generated is committed first as `interrupted` and updated as it streams, so a crash
at any moment leaves the conversation readable.
"""

from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass
from datetime import datetime
from pathlib import Path
from typing import Any

from alembic import command
from alembic.config import Config
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import delete, event, func, update
from sqlalchemy.engine import Engine, make_url
from sqlalchemy.exc import ArgumentError, OperationalError
from sqlmodel import Session, create_engine, select

from chatbot.models import (
    ANSWER_STATUSES,
    MESSAGE_STATUSES,
    ChatMessage,
    ChatSession,
    Comparison,
    ComparisonAnswer,
    Goal,
    Judgement,
    Review,
    utcnow,
)
from serving.errors import InvalidInput, PolarisError

MIGRATIONS = Path(__file__).parent / "migrations"


class StoreError(PolarisError):
    """The database cannot be opened or written; the message says what to do."""


class NotFound(InvalidInput):
    """A session, goal or message id that does not exist."""


class BadDatabaseURL(StoreError, InvalidInput):
    """POLARIS_DATABASE_URL is not a database URL at all (bad input: the CLI exits 2)."""


@dataclass(frozen=True, slots=True)
class MessageRow:
    """A message as read back for display, prompts and export: plain and read-only.

    Reading a long session as ORM objects costs ~4x more than the rows themselves; history is
    never edited in place (updates go through `Store.update_message`)."""

    id: int
    session_id: int
    role: str
    persona: str | None
    content: str
    status: str
    model: str | None
    backend: str | None
    strategy: str | None
    tokens: int | None
    prompt_tokens: int | None
    ttft_s: float | None
    tok_per_s: float | None
    stop_reason: str | None
    error: str | None
    created_at: datetime


_MESSAGE_COLUMNS = [ChatMessage.__table__.c[name] for name in MessageRow.__slots__]


@dataclass(frozen=True)
class SessionSummary:
    id: int
    title: str
    personas: list[str]
    backend: str
    model: str
    strategy: str
    goal_title: str | None
    messages: int
    updated_at: datetime


def _sqlite_pragmas(dbapi_connection, _record) -> None:
    cursor = dbapi_connection.cursor()
    cursor.execute("PRAGMA journal_mode=WAL")
    cursor.execute("PRAGMA synchronous=NORMAL")
    cursor.execute("PRAGMA foreign_keys=ON")
    cursor.execute("PRAGMA busy_timeout=30000")
    cursor.close()


def make_engine(url: str) -> Engine:
    try:
        parsed = make_url(url)
    except ArgumentError:
        raise BadDatabaseURL(
            f"database URL {url!r} is not a SQLAlchemy URL: use e.g. sqlite:///data/polaris.db "
            f"or postgresql+psycopg://user@host/db (POLARIS_DATABASE_URL)"
        ) from None
    if parsed.get_backend_name() == "sqlite":
        if parsed.database and parsed.database != ":memory:" and not parsed.database.startswith(
                "file:"):
            folder = Path(parsed.database).parent
            try:
                folder.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise StoreError(
                    f"cannot create the folder {folder} for the database: {exc.strerror}; "
                    f"create it or point POLARIS_DATABASE_URL elsewhere"
                ) from None
        engine = create_engine(url, connect_args={"check_same_thread": False, "timeout": 30})
        event.listen(engine, "connect", _sqlite_pragmas)
        return engine
    return create_engine(url, pool_pre_ping=True)


def alembic_config() -> Config:
    config = Config()
    config.set_main_option("script_location", str(MIGRATIONS))
    return config


def migrate(engine: Engine) -> None:
    """Bring the schema to the newest migration (a no-op when it is already there)."""
    config = alembic_config()
    head = ScriptDirectory.from_config(config).get_current_head()
    with engine.begin() as connection:
        if MigrationContext.configure(connection).get_current_revision() == head:
            return
        config.attributes["connection"] = connection
        command.upgrade(config, "head")


class Store:
    def __init__(self, url: str):
        self.url = url
        self.engine = make_engine(url)
        try:
            migrate(self.engine)
        except OperationalError as exc:
            raise StoreError(_explain(exc, url)) from None

    def _session(self) -> Session:
        return Session(self.engine, expire_on_commit=False)

    @contextmanager
    def _writing(self) -> Iterator[Session]:
        """A session whose statements and commit turn database errors into a StoreError."""
        with self._session() as session:
            try:
                yield session
                session.commit()
            except OperationalError as exc:
                session.rollback()
                raise StoreError(_explain(exc, self.url)) from None

    def _commit(self, session: Session) -> None:
        try:
            session.commit()
        except OperationalError as exc:
            session.rollback()
            raise StoreError(_explain(exc, self.url)) from None

    # -- goals -------------------------------------------------------------------------------

    def create_goal(self, title: str, description: str = "", constraints: str = "",
                    evidence: str = "") -> Goal:
        if not title.strip():
            raise ValueError("a goal needs a title: say in one line what you want to do")
        goal = Goal(title=title.strip(), description=description, constraints=constraints,
                    evidence=evidence)
        with self._session() as session:
            session.add(goal)
            self._commit(session)
            session.refresh(goal)
        return goal

    def get_goal(self, goal_id: int) -> Goal:
        with self._session() as session:
            goal = session.get(Goal, goal_id)
        if goal is None:
            raise NotFound(f"goal {goal_id} does not exist")
        return goal

    def update_goal(self, goal_id: int, **fields: str) -> Goal:
        allowed = {"title", "description", "constraints", "evidence"}
        if unknown := set(fields) - allowed:
            raise ValueError(f"unknown goal fields: {', '.join(sorted(unknown))}")
        if "title" in fields and not fields["title"].strip():
            raise ValueError("a goal needs a title: say in one line what you want to do")
        with self._session() as session:
            goal = session.get(Goal, goal_id)
            if goal is None:
                raise NotFound(f"goal {goal_id} does not exist")
            for key, value in fields.items():
                setattr(goal, key, value)
            goal.updated_at = utcnow()
            session.add(goal)
            self._commit(session)
            session.refresh(goal)
        return goal

    # -- sessions ----------------------------------------------------------------------------

    def create_session(self, *, personas: list[str], backend: str, model: str, strategy: str,
                       title: str = "", goal_id: int | None = None,
                       turn_order: str = "all") -> ChatSession:
        if not personas:
            raise ValueError("a session needs at least one critic")
        chat = ChatSession(title=title.strip() or "새 대화", personas=list(personas),
                           backend=backend, model=model, strategy=strategy, goal_id=goal_id,
                           turn_order=turn_order)
        with self._session() as session:
            session.add(chat)
            self._commit(session)
            session.refresh(chat)
        return chat

    def get_session(self, session_id: int) -> ChatSession:
        with self._session() as session:
            chat = session.get(ChatSession, session_id)
        if chat is None:
            raise NotFound(
                f"session {session_id} does not exist: `polaris sessions list` shows the ids"
            )
        return chat

    def update_session(self, session_id: int, **fields: Any) -> ChatSession:
        allowed = {"title", "personas", "backend", "model", "strategy", "goal_id", "turn_order",
                   "critic_settings"}
        if unknown := set(fields) - allowed:
            raise ValueError(f"unknown session fields: {', '.join(sorted(unknown))}")
        if "title" in fields:
            fields["title"] = fields["title"].strip()
            if not fields["title"]:
                raise ValueError("a session title cannot be empty")
        with self._session() as session:
            chat = session.get(ChatSession, session_id)
            if chat is None:
                raise NotFound(f"session {session_id} does not exist")
            for key, value in fields.items():
                setattr(chat, key, value)
            chat.updated_at = utcnow()
            session.add(chat)
            self._commit(session)
            session.refresh(chat)
        return chat

    def rename_session(self, session_id: int, title: str) -> ChatSession:
        return self.update_session(session_id, title=title)

    def delete_session(self, session_id: int) -> None:
        with self._writing() as session:
            if session.get(ChatSession, session_id) is None:
                raise NotFound(f"session {session_id} does not exist")
            # explicit deletes so PostgreSQL and SQLite behave alike without relying on cascades
            for table in (Judgement, Review, ChatMessage):
                session.execute(delete(table).where(table.session_id == session_id))
            session.execute(delete(ChatSession).where(ChatSession.id == session_id))

    def list_sessions(self) -> list[SessionSummary]:
        counts = (
            select(ChatMessage.session_id, func.count(ChatMessage.id).label("n"))
            .group_by(ChatMessage.session_id)
            .subquery()
        )
        query = (
            select(ChatSession, Goal.title, func.coalesce(counts.c.n, 0))
            .outerjoin(Goal, Goal.id == ChatSession.goal_id)
            .outerjoin(counts, counts.c.session_id == ChatSession.id)
            .order_by(ChatSession.updated_at.desc(), ChatSession.id.desc())
        )
        with self._session() as session:
            rows = session.exec(query).all()
        return [
            SessionSummary(c.id, c.title, list(c.personas), c.backend, c.model, c.strategy,
                           goal_title, n, c.updated_at)
            for c, goal_title, n in rows
        ]

    # -- messages ----------------------------------------------------------------------------

    def add_message(self, session_id: int, role: str, content: str, *,
                    persona: str | None = None, status: str = "complete",
                    **fields: Any) -> ChatMessage:
        """Insert and commit one message (and touch the session's updated_at)."""
        if role not in ("user", "assistant"):
            raise ValueError(f"role must be user or assistant, got {role!r}")
        _check_status(status)
        check_encodable(content)
        message = ChatMessage(session_id=session_id, role=role, content=content,
                              persona=persona, status=status, **fields)
        # One UPDATE and one INSERT … RETURNING id: every round trip counts on PostgreSQL.
        with self._writing() as session:
            touched = session.execute(
                update(ChatSession).where(ChatSession.id == session_id)
                .values(updated_at=message.created_at))
            if touched.rowcount == 0:
                raise NotFound(f"session {session_id} does not exist")
            session.add(message)
        return message

    def update_message(self, message_id: int, **fields: Any) -> ChatMessage:
        if "status" in fields:
            _check_status(fields["status"])
        with self._session() as session:
            message = session.get(ChatMessage, message_id)
            if message is None:
                raise NotFound(f"message {message_id} does not exist")
            for key, value in fields.items():
                setattr(message, key, value)
            session.add(message)
            self._commit(session)
            session.refresh(message)
        return message

    def delete_messages(self, message_ids: Iterable[int]) -> None:
        ids = list(message_ids)
        with self._writing() as session:
            session.execute(delete(Judgement).where(Judgement.message_id.in_(ids)))
            session.execute(delete(ChatMessage).where(ChatMessage.id.in_(ids)))

    def messages(self, session_id: int, *, last: int | None = None) -> list[MessageRow]:
        """A session's messages in order; `last=N` reads only the newest N."""
        table = ChatMessage.__table__
        query = select(*_MESSAGE_COLUMNS).where(table.c.session_id == session_id)
        if last is not None:
            query = query.order_by(table.c.id.desc()).limit(last)
        else:
            query = query.order_by(table.c.id)
        with self.engine.connect() as connection:
            rows = [MessageRow(*row) for row in connection.execute(query)]
        return rows[::-1] if last is not None else rows

    def count_messages(self, session_id: int, role: str | None = None) -> int:
        query = select(func.count()).select_from(ChatMessage).where(
            ChatMessage.session_id == session_id)
        if role is not None:
            query = query.where(ChatMessage.role == role)
        with self.engine.connect() as connection:
            return connection.execute(query).scalar_one()

    # -- debate: judgements and reviews ------------------------------------------------------

    def add_judgements(self, rows: Sequence[Judgement]) -> list[Judgement]:
        """Commit one turn's judgements (one row per critic) together."""
        with self._session() as session:
            session.add_all(rows)
            self._commit(session)
            for row in rows:
                session.refresh(row)
        return list(rows)

    def judgements(self, session_id: int) -> list[Judgement]:
        """Every judgement of a session, in the order they were made."""
        with self._session() as session:
            return list(session.exec(
                select(Judgement).where(Judgement.session_id == session_id)
                .order_by(Judgement.message_id, Judgement.id)))

    def save_review(self, session_id: int, markdown: str, data: dict) -> Review:
        review = Review(session_id=session_id, markdown=markdown, data=data)
        with self._session() as session:
            if session.get(ChatSession, session_id) is None:
                raise NotFound(f"session {session_id} does not exist")
            session.add(review)
            self._commit(session)
            session.refresh(review)
        return review

    def latest_review(self, session_id: int) -> Review | None:
        with self._session() as session:
            return session.exec(
                select(Review).where(Review.session_id == session_id)
                .order_by(Review.id.desc())).first()

    def goal_sessions(self, goal_id: int) -> list[ChatSession]:
        """The sessions on one goal, oldest first (the progress view)."""
        with self._session() as session:
            return list(session.exec(
                select(ChatSession).where(ChatSession.goal_id == goal_id)
                .order_by(ChatSession.created_at, ChatSession.id)))

    def list_goals(self) -> list[Goal]:
        with self._session() as session:
            return list(session.exec(select(Goal).order_by(Goal.updated_at.desc(), Goal.id)))

    # -- comparisons -------------------------------------------------------------------------

    def create_comparison(self, persona: str, question: str,
                          cells: Sequence[tuple[str, str, str, str | None]],
                          title: str = "") -> Comparison:
        """A comparison with one `pending` answer per (backend, model, strategy, adapter)."""
        if not question.strip():
            raise ValueError("a comparison needs a question: the user message to compare")
        if not cells:
            raise ValueError("a comparison needs at least one model and one strategy")
        comparison = Comparison(persona=persona, question=question, title=title.strip())
        with self._session() as session:
            session.add(comparison)
            session.flush()
            for position, (backend, model, strategy, adapter) in enumerate(cells):
                session.add(ComparisonAnswer(
                    comparison_id=comparison.id, position=position, backend=backend,
                    model=model, strategy=strategy, adapter=adapter, status="pending"))
            self._commit(session)
            session.refresh(comparison)
        return comparison

    def get_comparison(self, comparison_id: int) -> Comparison:
        with self._session() as session:
            comparison = session.get(Comparison, comparison_id)
        if comparison is None:
            raise NotFound(f"comparison {comparison_id} does not exist")
        return comparison

    def list_comparisons(self) -> list[Comparison]:
        """Every comparison, newest first."""
        with self._session() as session:
            return list(session.exec(
                select(Comparison).order_by(Comparison.created_at.desc(), Comparison.id.desc())))

    def comparison_answers(self, comparison_id: int) -> list[ComparisonAnswer]:
        with self._session() as session:
            return list(session.exec(
                select(ComparisonAnswer).where(ComparisonAnswer.comparison_id == comparison_id)
                .order_by(ComparisonAnswer.position, ComparisonAnswer.id)
            ))

    def update_answer(self, answer_id: int, **fields: Any) -> ComparisonAnswer:
        allowed = {"answer", "notes", "status", "tokens", "ttft_s", "tok_per_s", "error", "model"}
        if unknown := set(fields) - allowed:
            raise ValueError(f"unknown answer fields: {', '.join(sorted(unknown))}")
        if "status" in fields and fields["status"] not in ANSWER_STATUSES:
            raise ValueError(f"status must be one of {', '.join(ANSWER_STATUSES)}, "
                             f"got {fields['status']!r}")
        with self._session() as session:
            answer = session.get(ComparisonAnswer, answer_id)
            if answer is None:
                raise NotFound(f"comparison answer {answer_id} does not exist")
            for key, value in fields.items():
                setattr(answer, key, value)
            session.add(answer)
            self._commit(session)
            session.refresh(answer)
        return answer

    def delete_comparison(self, comparison_id: int) -> None:
        with self._writing() as session:
            if session.get(Comparison, comparison_id) is None:
                raise NotFound(f"comparison {comparison_id} does not exist")
            session.execute(delete(ComparisonAnswer).where(
                ComparisonAnswer.comparison_id == comparison_id))
            session.execute(delete(Comparison).where(Comparison.id == comparison_id))


def _check_status(status: str) -> None:
    if status not in MESSAGE_STATUSES:
        raise ValueError(f"status must be one of {', '.join(MESSAGE_STATUSES)}, got {status!r}")


def check_encodable(text: str) -> None:
    """Refuse text no database can store (unpaired surrogates, e.g. from undecodable argv
    bytes) with a sentence instead of a codec traceback."""
    try:
        text.encode("utf-8")
    except UnicodeEncodeError as exc:
        raise ValueError(
            f"메시지에 유니코드가 아닌 문자가 있습니다 ({exc.start + 1}번째 글자): "
            f"그 부분을 지우고 다시 보내세요."
        ) from None


def _explain(exc: OperationalError, url: str) -> str:
    """A database error as a sentence with the fix (never echoing credentials in the URL)."""
    safe_url = make_url(url).render_as_string(hide_password=True)
    text = str(exc.orig)
    if "readonly" in text or "read-only" in text:
        return f"the database {safe_url} is read-only: check the file's permissions"
    if "disk" in text and ("full" in text or "I/O" in text):
        return f"the disk holding {safe_url} is full: free some space and try again"
    if "locked" in text:
        return f"the database {safe_url} stayed locked by another writer: try again"
    if "unable to open" in text:
        return (f"cannot open the database {safe_url}: check that its folder exists and is "
                f"writable, or set POLARIS_DATABASE_URL")
    return f"database error on {safe_url}: {text}"
