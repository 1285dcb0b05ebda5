"""The chat engine: store the user's words first, then stream a critic's reply into the DB.

Used by the Streamlit pages and the CLI alike, so both behave the same on errors and stops.
"""

import re
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass

from chatbot import debate
from chatbot.models import ChatMessage, ChatSession
from chatbot.store import Store, check_encodable
from serving.backend import ChatBackend, create_backend
from serving.persona import Persona, PersonaError, load_all_personas
from serving.prompting import GoalCard, build_messages, trim_history
from serving.retrieval import retrieve_examples
from serving.settings import STRATEGIES, Settings
from serving.types import GenerationOptions, Message, Stats

MAX_USER_CHARS = 20_000
FLUSH_EVERY_S = 0.5  # how often a streaming reply's partial text is written to the DB


class SavedStream:
    """A backend's chunks as text, handing the text so far to `save` every FLUSH_EVERY_S so a
    crash leaves the partial reply in the DB. `text` and `stats` hold what has arrived."""

    def __init__(self, chunks: Iterator, save: Callable[[str], object]):
        self._chunks, self._save = chunks, save
        self.parts: list[str] = []
        self.stats: Stats | None = None

    @property
    def text(self) -> str:
        return "".join(self.parts)

    def __iter__(self) -> Iterator[str]:
        flushed_at = time.monotonic()
        for chunk in self._chunks:
            if chunk.done:
                self.stats = chunk.stats
                continue
            self.parts.append(chunk.text)
            yield chunk.text
            if time.monotonic() - flushed_at >= FLUSH_EVERY_S:
                self._save(self.text)
                flushed_at = time.monotonic()
DEFAULT_TITLE = "새 대화"
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0c\x0e-\x1f\x7f]")


def clean_user_text(text: str) -> str:
    """The user's message without control characters; refuses empty or oversized text."""
    text = _CONTROL.sub("", text).replace("\r\n", "\n").strip()
    check_encodable(text)
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
        self.strategy = chat.strategy  # the critic's own strategy when the session overrides it
        self.outcome: ReplyOutcome | None = None

    def __iter__(self) -> Iterator[str]:
        store = self.engine.store
        row = store.add_message(
            self.chat.id, "assistant", "", persona=self.persona.id, status="interrupted",
            backend=self.backend.kind, model=self.backend.model, strategy=self.strategy,
        )
        stream = SavedStream(self.backend.stream(self.messages, self.options, self.cancel),
                             lambda text: store.update_message(row.id, content=text))
        finished = False
        try:
            yield from stream
            finished = True
        except Exception as exc:
            message = store.update_message(
                row.id, content=stream.text, status="interrupted" if stream.parts else "error",
                error=str(exc) or type(exc).__name__, stop_reason="error",
            )
            self.outcome = ReplyOutcome(message, stream.stats, exc)
            raise
        finally:
            if not finished and self.outcome is None:
                # closed early: the UI's stop button, a rerun, Ctrl-C
                message = store.update_message(
                    row.id, content=stream.text, status="interrupted", stop_reason="cancelled"
                )
                self.outcome = ReplyOutcome(message, stream.stats)
        stats = stream.stats
        status = "interrupted" if stats and stats.stop_reason == "cancelled" else "complete"
        message = store.update_message(
            row.id, content=stream.text, status=status,
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

    def judge_backend(self) -> ChatBackend:
        """The judge's backend: POLARIS_JUDGE_BACKEND/MODEL, by default the chat default."""
        return self.backend(self.settings.judge_backend or self.settings.backend,
                            self.settings.judge_model)

    def goal_card(self, chat: ChatSession) -> GoalCard | None:
        if chat.goal_id is None:
            return None
        goal = self.store.get_goal(chat.goal_id)
        return GoalCard(goal.title, goal.description, goal.constraints, goal.evidence)

    # -- sessions ----------------------------------------------------------------------------

    def start_session(self, personas: list[str], *, backend: str | None = None,
                      model: str | None = None, strategy: str | None = None,
                      goal: GoalCard | None = None, title: str = "",
                      goal_id: int | None = None, turn_order: str = "all") -> ChatSession:
        """A new session; `goal_id` continues an earlier goal (its progress view grows)."""
        if turn_order not in debate.TURN_ORDERS:
            raise ValueError(f"unknown turn order {turn_order!r}: use all or round-robin")
        for persona_id in personas:
            self.persona(persona_id)
        strategy = strategy or self.settings.default_strategy(backend, model)
        if strategy not in STRATEGIES:
            raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
        kind = backend or self.settings.backend
        chosen = self.backend(kind, model)  # fails early on an unknown backend kind
        if goal_id is not None:
            self.store.get_goal(goal_id)
        elif goal and goal.title.strip():
            goal_id = self.store.create_goal(
                goal.title, goal.description, goal.constraints, goal.evidence).id
        return self.store.create_session(
            personas=personas, backend=kind, model=model or chosen.model,
            strategy=strategy, goal_id=goal_id, title=title, turn_order=turn_order,
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
        persona = debate.styled(persona, debate.critic_option(chat, persona.id, "tone"))
        strategy = debate.critic_option(chat, persona.id, "strategy") or chat.strategy
        own_model = debate.critic_option(chat, persona.id, "model")
        history = self.history(session_id, persona.id)
        if not history or history[-1]["role"] != "user":
            raise ValueError("비평가가 답할 사용자 메시지가 없습니다: 먼저 메시지를 보내세요.")
        budget = max(1_000, self.settings.n_ctx - self.settings.max_tokens - 1_000)
        model = own_model or chat.model
        if strategy == "finetuned" and persona.model and not own_model:
            model = persona.model
        examples = None
        if strategy == "fewshot":
            examples = retrieve_examples(persona, history[-1]["content"])
        goal = self.goal_card(chat)
        messages = build_messages(strategy, persona, trim_history(history, budget),
                                  goal=goal, examples=examples,
                                  note=self.debate_note(chat, persona, goal))
        backend = self.backend(chat.backend, model)
        options = options or GenerationOptions(
            max_tokens=self.settings.max_tokens, temperature=self.settings.temperature)
        stream = ReplyStream(self, chat, persona, messages, backend, options, cancel)
        stream.strategy = strategy
        return stream

    def debate_note(self, chat: ChatSession, persona: Persona,
                    goal: GoalCard | None) -> str | None:
        """The critic's view of the judge's ledger, once the judge has spoken in this session."""
        rows = self.store.judgements(chat.id)
        if not rows:
            return None
        entry = debate.ledger_from(rows, chat.personas, self.personas).get(persona.id)
        return debate.critic_note(entry, persona, goal) if entry else None

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
        """The conversation as this critic saw it happen: the user's turns and its own replies,
        with the other critics' replies on the user's side, each attributed ([이름] …), failed
        (empty) replies left out and same-role neighbours joined."""
        pieces: list[tuple[str, str | None, str]] = []  # (role, speaker, text)
        for m in self.store.messages(session_id):
            if not m.content.strip():
                continue
            if m.role == "assistant" and m.persona not in (None, persona_id):
                other = self.personas.get(m.persona or "")
                pieces.append(("user", other.name if other else m.persona, m.content))
            else:
                pieces.append((m.role, None, m.content))
        turns: list[Message] = []
        group: list[tuple[str | None, str]] = []
        for i, (role, speaker, text) in enumerate(pieces):
            group.append((speaker, text))
            if i + 1 < len(pieces) and pieces[i + 1][0] == role:
                continue
            if any(speaker for speaker, _ in group):  # others spoke: say who said what
                content = "\n\n".join(f"[{speaker or '사용자'}] {text}" for speaker, text in group)
            else:
                content = "\n\n".join(text for _, text in group)
            turns.append(Message(role=role, content=content))  # type: ignore[typeddict-item]
            group = []
        return turns


def _title_from(text: str, limit: int = 30) -> str:
    line = text.splitlines()[0].strip()
    return line if len(line) <= limit else line[: limit - 1] + "…"
