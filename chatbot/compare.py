"""Compare mode: one user message over models × strategies, side by side (the study's method).

A comparison is stored first with one `pending` answer per (model, strategy); each answer is
then generated and written back as it streams, so the table survives a crash or a closed tab
and the unfinished answers can be generated later. Notes per answer are the user's verdicts,
exported with the answers as | model | strategy | question | answer | notes |.
"""

import csv
import io
import threading
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path

from chatbot.engine import ChatEngine, SavedStream, clean_user_text
from chatbot.models import Comparison, ComparisonAnswer
from chatbot.store import Store
from serving.backend import ChatBackend, available_backends, create_backend
from serving.errors import InvalidInput, PolarisError
from serving.persona import Persona
from serving.prompting import build_messages
from serving.retrieval import retrieve_examples
from serving.settings import STRATEGIES, Settings
from serving.types import GenerationOptions, Message

COLUMNS = ("model", "strategy", "question", "answer", "notes")
FORMATS = ("md", "csv")


@dataclass(frozen=True)
class Target:
    """A model to compare: `backend:model`, or a bare model on the default backend."""

    backend: str
    model: str | None = None

    @property
    def label(self) -> str:
        return f"{self.backend}:{self.model}" if self.model else self.backend


def parse_targets(text: str | Sequence[str], default_backend: str) -> list[Target]:
    """'a,ollama:b' -> targets. A prefix names a backend only when it is a known kind, so
    Ollama tags such as 'gemma3:270m' stay whole model names."""
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text)]
    items = [p for p in items if p]
    if not items:
        raise InvalidInput("no models given: pass --models A,B (a model or backend:model)")
    known = available_backends()
    targets: list[Target] = []
    for item in items:
        prefix, sep, rest = item.partition(":")
        if sep and prefix in known:
            if not rest.strip():
                raise InvalidInput(f"model {item!r} names a backend but no model after ':'")
            target = Target(prefix, rest.strip())
        else:
            target = Target(default_backend, item)
        if target not in targets:
            targets.append(target)
    return targets


def parse_strategies(text: str | Sequence[str]) -> list[str]:
    items = [p.strip() for p in (text.split(",") if isinstance(text, str) else text)]
    items = list(dict.fromkeys(p for p in items if p))
    if not items:
        raise InvalidInput(f"no strategies given: use some of {', '.join(STRATEGIES)}")
    for item in items:
        if item not in STRATEGIES:
            raise InvalidInput(f"unknown strategy {item!r}: use some of {', '.join(STRATEGIES)}")
    return items


@dataclass(frozen=True)
class Cell:
    """One planned answer: what runs it (model may differ from the target for `finetuned`)."""

    backend: str
    model: str
    strategy: str
    adapter: str | None = None


def answer_label(answer: ComparisonAnswer | Cell) -> str:
    """The model column: backend:model, plus the LoRA adapter when one was applied."""
    label = f"{answer.backend}:{answer.model}"
    return f"{label} + {Path(answer.adapter).name}" if answer.adapter else label


class AnswerStream:
    """Iterate for the answer's text as it is generated. The row is updated as text arrives
    and finished as complete, interrupted or error; a failure never raises here (one broken
    model must not stop the rest of the table): it is in `error` and in the row."""

    def __init__(self, store: Store, answer: ComparisonAnswer, backend: ChatBackend | None,
                 messages: list[Message], options: GenerationOptions,
                 cancel: threading.Event | None, failure: Exception | None = None):
        self.store, self.answer, self.backend = store, answer, backend
        self.messages, self.options, self.cancel = messages, options, cancel
        self.error: Exception | None = failure
        self.result: ComparisonAnswer | None = None

    def __iter__(self) -> Iterator[str]:
        if self.error is not None:
            self.result = self.store.update_answer(self.answer.id, status="error",
                                                   error=str(self.error), answer="")
            return
        self.store.update_answer(self.answer.id, status="interrupted", answer="", error=None)
        stream = SavedStream(self.backend.stream(self.messages, self.options, self.cancel),
                             lambda text: self.store.update_answer(self.answer.id, answer=text))
        finished = False
        try:
            yield from stream
            finished = True
        except Exception as exc:  # noqa: BLE001 - recorded in the row and on the stream
            self.error = exc
            self.result = self.store.update_answer(
                self.answer.id, answer=stream.text,
                status="interrupted" if stream.parts else "error",
                error=str(exc) or type(exc).__name__)
            return
        finally:
            if not finished and self.result is None:  # closed early: stop, rerun, Ctrl-C
                self.result = self.store.update_answer(
                    self.answer.id, answer=stream.text, status="interrupted")
        stats = stream.stats
        cancelled = stats is not None and stats.stop_reason == "cancelled"
        self.result = self.store.update_answer(
            self.answer.id, answer=stream.text,
            status="interrupted" if cancelled else "complete",
            tokens=stats.completion_tokens if stats else None,
            ttft_s=stats.ttft_s if stats else None,
            tok_per_s=stats.tok_per_s if stats else None,
        )

    def text(self) -> str:
        return "".join(self)


class Comparer:
    """Plans, runs and stores comparisons."""

    def __init__(self, settings: Settings, store: Store | None = None,
                 personas: dict[str, Persona] | None = None,
                 backend_factory: Callable[..., ChatBackend] = create_backend):
        engine = ChatEngine(settings, store, personas, backend_factory)  # store, cards, lookup
        self.settings, self.store, self.personas = settings, engine.store, engine.personas
        self.persona = engine.persona
        self._backend_factory = backend_factory
        # keyed by adapter too, unlike the engine's: see backend()
        self._backends: dict[tuple, ChatBackend] = {}
        self._lock = threading.Lock()

    def backend(self, kind: str, model: str | None, adapter: str | None = None) -> ChatBackend:
        """A cached backend. Only the `finetuned` cells get the LoRA adapter: the other
        strategies must show what the base model does on its own."""
        key = (kind, model or "", adapter)
        with self._lock:
            if key not in self._backends:
                settings = self.settings.model_copy(update={
                    "lora_path": Path(adapter) if adapter else None, "default_lora": False})
                try:
                    self._backends[key] = self._backend_factory(kind, settings, model)
                except ValueError as exc:  # an unknown backend kind
                    raise InvalidInput(str(exc)) from None
            return self._backends[key]

    # -- planning ----------------------------------------------------------------------------

    def plan(self, persona_id: str, targets: Sequence[Target],
             strategies: Sequence[str]) -> list[Cell]:
        """The answers to generate, model by model, strategy by strategy.

        `finetuned` means the tuned critic: on the embedded backend the model plus its LoRA
        adapter when there is one (POLARIS_LORA_PATH, or the shipped critics adapter on the
        shipped base), else the card's own `model` when it names one, else the same model with
        the short persona prompt."""
        persona = self.persona(persona_id)
        strategies = parse_strategies(strategies)
        cells: list[Cell] = []
        for target in targets:
            base = self.backend(target.backend, target.model)
            for strategy in strategies:
                model, adapter = target.model or base.model, None
                if strategy == "finetuned":
                    lora = (self.settings.resolve_lora_path(target.model)
                            if target.backend == "embedded" else None)
                    if lora is not None:
                        adapter = str(lora)
                    elif persona.model:
                        model = persona.model
                cells.append(Cell(target.backend, model, strategy, adapter))
        return cells

    def check(self, cells: Sequence[Cell]) -> None:
        """Refuse models and adapters that do not exist, before anything is stored.
        An unreachable backend raises its own error (not bad input: the fix is elsewhere)."""
        for backend_kind, model, adapter in dict.fromkeys(
                (c.backend, c.model, c.adapter) for c in cells):
            if adapter and not Path(adapter).is_file():
                raise InvalidInput(
                    f"LoRA adapter {adapter} does not exist: fix or unset POLARIS_LORA_PATH")
            backend = self.backend(backend_kind, model, adapter)
            names = [m.name for m in backend.models()]
            if backend.model not in names and f"{backend.model}:latest" not in names:
                shown = ", ".join(names[:10]) or "none"
                raise InvalidInput(
                    f"unknown model {model!r} for backend {backend_kind}: available: {shown}")

    def start(self, persona_id: str, question: str, targets: Sequence[Target],
              strategies: Sequence[str], *, title: str = "") -> Comparison:
        """Validate and store a comparison with all its answers pending."""
        question = clean_user_text(question)
        cells = self.plan(persona_id, targets, strategies)
        self.check(cells)
        return self.store.create_comparison(
            persona_id, question, [(c.backend, c.model, c.strategy, c.adapter) for c in cells],
            title=title)

    # -- running -----------------------------------------------------------------------------

    def stream(self, answer: ComparisonAnswer, *,
               cancel: threading.Event | None = None) -> AnswerStream:
        """Generate (or regenerate) one answer; iterate the result for its text."""
        comparison = self.store.get_comparison(answer.comparison_id)
        options = GenerationOptions(max_tokens=self.settings.max_tokens,
                                    temperature=self.settings.temperature)
        try:
            persona = self.persona(comparison.persona)
            messages = self.messages(persona, answer.strategy, comparison.question)
            backend = self.backend(answer.backend, answer.model, answer.adapter)
        except PolarisError as exc:
            return AnswerStream(self.store, answer, None, [], options, cancel, failure=exc)
        return AnswerStream(self.store, answer, backend, messages, options, cancel)

    @staticmethod
    def messages(persona: Persona, strategy: str, question: str, k: int = 5) -> list[Message]:
        history = [Message(role="user", content=question)]
        examples = retrieve_examples(persona, question, k) if strategy == "fewshot" else None
        return build_messages(strategy, persona, history, k=k, examples=examples)

    def pending(self, comparison_id: int) -> list[ComparisonAnswer]:
        return [a for a in self.store.comparison_answers(comparison_id) if a.status == "pending"]

    def run(self, comparison_id: int,
            on_answer: Callable[[ComparisonAnswer], None] | None = None,
            cancel: threading.Event | None = None) -> list[ComparisonAnswer]:
        """Generate every pending answer in order; returns all answers of the comparison."""
        for answer in self.pending(comparison_id):
            if cancel is not None and cancel.is_set():
                break
            stream = self.stream(answer, cancel=cancel)
            stream.text()
            if on_answer:
                on_answer(stream.result)
        return self.store.comparison_answers(comparison_id)

    def set_notes(self, answer_id: int, notes: str) -> ComparisonAnswer:
        return self.store.update_answer(answer_id, notes=notes.strip())


# -- export --------------------------------------------------------------------------------


def _answer_text(answer: ComparisonAnswer) -> str:
    if answer.status == "pending":
        return "(생성 전)"
    if answer.status == "error" and not answer.answer:
        return f"(오류: {answer.error})"
    if answer.status == "interrupted":
        return f"{answer.answer} (중단됨)".strip()
    return answer.answer


def table_rows(comparison: Comparison, answers: Sequence[ComparisonAnswer]) -> list[list[str]]:
    return [[answer_label(a), a.strategy, comparison.question, _answer_text(a), a.notes]
            for a in answers]


def _md_cell(text: str) -> str:
    text = text.replace("\\", "\\\\").replace("|", "\\|")
    return "<br>".join(line.strip() for line in text.strip().splitlines())


def comparison_markdown(comparison: Comparison, answers: Sequence[ComparisonAnswer],
                        persona_name: str | None = None) -> str:
    """A Markdown table like the study's: | model | strategy | question | answer | notes |."""
    who = f"{persona_name} ({comparison.persona})" if persona_name else comparison.persona
    name = f"비교 #{comparison.id}" + (f": {comparison.title}" if comparison.title else "")
    lines = [f"## {name} — {who}", "",
             "| " + " | ".join(COLUMNS) + " |", "|" + "---|" * len(COLUMNS)]
    for row in table_rows(comparison, answers):
        lines.append("| " + " | ".join(_md_cell(cell) for cell in row) + " |")
    return "\n".join(lines) + "\n"


def comparison_csv(comparison: Comparison, answers: Sequence[ComparisonAnswer]) -> str:
    """The same table as CSV (RFC 4180 quoting; newlines inside answers are kept)."""
    buffer = io.StringIO()
    writer = csv.writer(buffer, lineterminator="\n")
    writer.writerow(COLUMNS)
    writer.writerows(table_rows(comparison, answers))
    return buffer.getvalue()


def export_comparison(store: Store, comparison_id: int, fmt: str,
                      personas: dict[str, Persona] | None = None) -> str:
    if fmt not in FORMATS:
        raise InvalidInput(f"unknown format {fmt!r}: use md or csv")
    comparison = store.get_comparison(comparison_id)
    answers = store.comparison_answers(comparison_id)
    if fmt == "csv":
        return comparison_csv(comparison, answers)
    persona = (personas or {}).get(comparison.persona)
    return comparison_markdown(comparison, answers, persona.name if persona else None)


def file_text(text: str, fmt: str) -> str:
    """What goes into a file: CSV starts with a BOM so spreadsheet apps read the Korean as
    UTF-8 (Excel otherwise guesses the locale's code page)."""
    return "\ufeff" + text if fmt == "csv" else text
