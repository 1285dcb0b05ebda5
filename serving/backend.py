"""The ChatBackend protocol and the registry that builds backends by kind."""

from collections.abc import Callable, Iterator, Sequence
from threading import Event
from typing import TYPE_CHECKING, Protocol, runtime_checkable

from serving.errors import BackendError
from serving.types import Chunk, Completion, GenerationOptions, Health, Message, ModelInfo, Stats

if TYPE_CHECKING:
    from serving.settings import Settings


@runtime_checkable
class ChatBackend(Protocol):
    kind: str
    model: str

    def stream(
        self,
        messages: Sequence[Message],
        options: GenerationOptions | None = None,
        cancel: Event | None = None,
    ) -> Iterator[Chunk]:
        """Text chunks as they are generated, then one final chunk with done=True and stats."""
        ...

    def complete(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Completion: ...

    def models(self) -> list[ModelInfo]: ...

    def health(self) -> Health: ...


def collect(chunks: Iterator[Chunk]) -> Completion:
    """Drain a stream into one Completion (the default `complete` of every backend)."""
    parts: list[str] = []
    stats: Stats | None = None
    for chunk in chunks:
        parts.append(chunk.text)
        if chunk.done:
            stats = chunk.stats
    if stats is None:
        raise BackendError("the backend's stream ended without its final chunk; try again")
    return Completion("".join(parts), stats)


BackendFactory = Callable[["Settings", str | None], ChatBackend]
_FACTORIES: dict[str, BackendFactory] = {}


def register_backend(kind: str, factory: BackendFactory) -> None:
    """Make `kind` available to create_backend (tests and plugins add their own)."""
    _FACTORIES[kind] = factory


def available_backends() -> list[str]:
    return list(_FACTORIES)


def create_backend(kind: str, settings: "Settings", model: str | None = None) -> ChatBackend:
    """Build the backend of `kind` for `model` (None: the configured default)."""
    try:
        factory = _FACTORIES[kind]
    except KeyError:
        raise ValueError(
            f"unknown backend {kind!r}: use one of {', '.join(_FACTORIES)} (POLARIS_BACKEND)"
        ) from None
    return factory(settings, model)


def _embedded(settings: "Settings", model: str | None) -> ChatBackend:
    from serving.embedded import EmbeddedBackend

    return EmbeddedBackend.from_settings(settings, model)


def _ollama(settings: "Settings", model: str | None) -> ChatBackend:
    from serving.ollama_backend import OllamaBackend

    return OllamaBackend.from_settings(settings, model)


def _openai(settings: "Settings", model: str | None) -> ChatBackend:
    from serving.openai_backend import OpenAIBackend

    return OpenAIBackend.from_settings(settings, model)


register_backend("embedded", _embedded)
register_backend("ollama", _ollama)
register_backend("openai", _openai)
