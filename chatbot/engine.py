"""The chat engine: store the user's words first, then stream a critic's reply into the DB.

Used by the Streamlit pages and the CLI alike, so both behave the same on errors and stops.
"""

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chatbot.models import ChatMessage, ChatSession
from chatbot.store import Store
from serving.backend import ChatBackend, create_backend
from serving.persona import Persona, PersonaError, load_all_personas
from serving.prompting import GoalCard, build_messages, trim_history
from serving.settings import STRATEGIES, Settings
from serving.types import GenerationOptions, Message, Stats

MAX_USER_CHARS = 20_000
FLUSH_EVERY_S = 0.5  # how often a streaming reply's partial text is written to the DB
DEFAULT_TITLE = "새 대화"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_user_text(text: str) -> str:
    """The user's message without control characters; refuses empty or oversized text."""
    text = _CONTROL.sub("", text).replace("\r\n", "\n").strip()
    if not text:
        raise ValueError("메시지가 비어 있습니다: 비평가에게 할 말을 입력하세요.")
    if len(text) > MAX_USER_CHARS:
        raise ValueError(
            f"메시지가 너무 깁니다 ({len(text):,}자): {MAX_USER_CHARS:,}자 이하로 줄여 주세요."
        )
    return text


@dataclass
class ReplyOutcome:
    message: ChatMessage
    stats: Stats | None
    error: Exception | None = None


class ReplyStream:
    """Iterate to get the reply's text as it is generated; `outcome` is set when it ends.

    The assistant row is committed as `interrupted` before the first token and updated as text
    arrives, so a crash, a closed tab or a stop leaves the partial reply in the DB, marked.
    """

    def __init__(self, engine: "ChatEngine", chat: ChatSession, persona: Persona,
                 messages: list[Message], backend: ChatBackend, options: GenerationOptions,
                 cancel: threading.Event | None):
        self.engine, self.chat, self.persona = engine, chat, persona
        self.messages, self.backend, self.options = messages, backend, options
        self.cancel = cancel
        self.outcome: ReplyOutcome | None = None

    def __iter__(self) -> Iterator[str]:
        store = self.engine.store
        row = store.add_message(
            self.chat.id, "assistant", "", persona=self.persona.id, status="interrupted",
            backend=self.backend.kind, model=self.backend.model, strategy=self.chat.strategy,
        )
        parts: list[str] = []
        stats: Stats | None = None
        flushed_at = time.monotonic()
        finished = False
        try:
            for chunk in self.backend.stream(self.messages, self.options, self.cancel):
                if chunk.done:
                    stats = chunk.stats
                    continue
                parts.append(chunk.text)
                yield chunk.text
                if time.monotonic() - flushed_at >= FLUSH_EVERY_S:
                    store.update_message(row.id, content="".join(parts))
                    flushed_at = time.monotonic()
            finished = True
        except Exception as exc:
            message = store.update_message(
                row.id, content="".join(parts), status="interrupted" if parts else "error",
                error=str(exc) or type(exc).__name__, stop_reason="error",
            )
            self.outcome = ReplyOutcome(message, stats, exc)
            raise
        finally:
            if not finished and self.outcome is None:
                # closed early: the UI's stop button, a rerun, Ctrl-C
                message = store.update_message(
                    row.id, content="".join(parts), status="interrupted", stop_reason="cancelled"
                )
                self.outcome = ReplyOutcome(message, stats)
        status = "interrupted" if stats and stats.stop_reason == "cancelled" else "complete"
        message = store.update_message(
            row.id, content="".join(parts), status=status,
            tokens=stats.completion_tokens if stats else None,
            prompt_tokens=stats.prompt_tokens if stats else None,
            ttft_s=stats.ttft_s if stats else None,
            tok_per_s=stats.tok_per_s if stats else None,
            stop_reason=stats.stop_reason if stats else None,
        )
        self.outcome = ReplyOutcome(message, stats)

    def text(self) -> str:
        """Run the whole reply and return its text."""
        return "".join(self)


class ChatEngine:
    def __init__(self, settings: Settings, store: Store | None = None,
                 personas: dict[str, Persona] | None = None,
                 backend_factory: Callable[..., ChatBackend] = create_backend):
        self.settings = settings
        self.store = store or Store(settings.database_url)
        self.personas = personas or load_all_personas(settings.personas_dir, settings.data_dir)
        self._backend_factory = backend_factory
        self._backends: dict[tuple[str, str], ChatBackend] = {}
        self._lock = threading.Lock()

    # -- lookups -----------------------------------------------------------------------------

    def persona(self, persona_id: str) -> Persona:
        try:
            return self.personas[persona_id]
        except KeyError:
            raise PersonaError(
                f"unknown persona {persona_id!r}: choose one of {', '.join(self.personas)} "
                f"(`polaris personas list`)"
            ) from None

    def backend(self, kind: str, model: str | None = None) -> ChatBackend:
        """A cached backend for (kind, model); model None is the configured default."""
        key = (kind, model or "")
        with self._lock:
            if key not in self._backends:
                self._backends[key] = self._backend_factory(kind, self.settings, model)
            return self._backends[key]

    def goal_card(self, chat: ChatSession) -> GoalCard | None:
        if chat.goal_id is None:
            return None
        goal = self.store.get_goal(chat.goal_id)
        return GoalCard(goal.title, goal.description, goal.constraints, goal.evidence)

    # -- sessions ----------------------------------------------------------------------------

    def start_session(self, personas: list[str], *, backend: str | None = None,
                      model: str | None = None, strategy: str | None = None,
                      goal: GoalCard | None = None, title: str = "") -> ChatSession:
        for persona_id in personas:
            self.persona(persona_id)
        strategy = strategy or self.settings.strategy
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        kind = backend or self.settings.backend
        chosen = self.backend(kind, model)  # fails early on an unknown backend kind
        goal_id = None
        if goal and goal.title.strip():
            goal_id = self.store.create_goal(
                goal.title, goal.description, goal.constraints, goal.evidence).id
        return self.store.create_session(
            personas=personas, backend=kind, model=model or chosen.model,
            strategy=strategy, goal_id=goal_id, title=title,
        )

    # -- chatting ----------------------------------------------------------------------------

    def send(self, session_id: int, text: str) -> ChatMessage:
        """Commit the user's message (before any generation starts)."""
        text = clean_user_text(text)
        chat = self.store.get_session(session_id)
        message = self.store.add_message(session_id, "user", text)
        if chat.title == DEFAULT_TITLE:
            self.store.rename_session(session_id, _title_from(text))
        return message

    def reply(self, session_id: int, persona_id: str | None = None, *,
              cancel: threading.Event | None = None,
              options: GenerationOptions | None = None) -> ReplyStream:
        """A critic's reply to the conversation so far, streamed and stored as it goes."""
        chat = self.store.get_session(session_id)
        persona = self.persona(persona_id or chat.personas[0])
        history = self.history(session_id, persona.id)
        if not history or history[-1]["role"] != "user":
            raise ValueError("비평가가 답할 사용자 메시지가 없습니다: 먼저 메시지를 보내세요.")
        budget = max(1_000, self.settings.n_ctx - self.settings.max_tokens - 1_000)
        model = chat.model
        if chat.strategy == "finetuned" and persona.model:
            model = persona.model
        messages = build_messages(chat.strategy, persona, trim_history(history, budget),
                                  goal=self.goal_card(chat))
        backend = self.backend(chat.backend, model)
        options = options or GenerationOptions(
            max_tokens=self.settings.max_tokens, temperature=self.settings.temperature)
        return ReplyStream(self, chat, persona, messages, backend, options, cancel)

    def regenerate(self, session_id: int, persona_id: str | None = None, *,
                   cancel: threading.Event | None = None) -> ReplyStream:
        """Drop the replies after the last user message and generate a new one."""
        messages = self.store.messages(session_id)
        last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
        if last_user is None:
            raise ValueError("다시 생성할 답변이 없습니다: 먼저 메시지를 보내세요.")
        self.store.delete_messages(m.id for m in messages[last_user + 1:])
        return self.reply(session_id, persona_id, cancel=cancel)

    def history(self, session_id: int, persona_id: str) -> list[Message]:
        """The conversation as this critic saw it: the user's turns and its own replies,
        with failed (empty) replies left out and same-role neighbours joined."""
        turns: list[Message] = []
        for m in self.store.messages(session_id):
            if not m.content.strip():
                continue
            if m.role == "assistant" and m.persona not in (None, persona_id):
                continue
            if turns and turns[-1]["role"] == m.role:
                turns[-1] = Message(role=m.role, content=f"{turns[-1]['content']}\n\n{m.content}")
            else:
                turns.append(Message(role=m.role, content=m.content))  # type: ignore[typeddict-item]
        return turns


def _title_from(text: str, limit: int = 30) -> str:
    line = text.splitlines()[0].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
