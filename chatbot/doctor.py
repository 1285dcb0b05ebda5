"""`polaris doctor`: is everything Polaris needs in place, and if not, what to do."""

from collections.abc import Iterator
from dataclasses import dataclass

from serving.backend import create_backend
from serving.settings import Settings
from serving.types import Message


@dataclass(frozen=True)
class Check:
    name: str
    ok: bool
    detail: str
    optional: bool = False


def run_checks(settings: Settings) -> Iterator[Check]:
    yield _database(settings)
    yield _personas(settings)
    for kind in ("embedded", "ollama", "openai"):
        yield _backend(settings, kind, optional=kind != settings.backend)
    if settings.backend == "embedded":
        yield _template(settings)


def _database(settings: Settings) -> Check:
    from chatbot.store import Store

    try:
        store = Store(settings.database_url)
        sessions = len(store.list_sessions())
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure, whatever it is
        return Check("database", False, str(exc))
    return Check("database", True, f"{store.engine.url.render_as_string()} ({sessions} sessions)")


def _personas(settings: Settings) -> Check:
    from serving.persona import load_all_personas

    try:
        personas = load_all_personas(settings.personas_dir, settings.data_dir)
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure, whatever it is
        return Check("personas", False, str(exc))
    return Check("personas", True, f"{len(personas)}: {', '.join(personas)}")


def _backend(settings: Settings, kind: str, optional: bool) -> Check:
    try:
        health = create_backend(kind, settings).health()
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure, whatever it is
        return Check(f"backend {kind}", False, str(exc), optional)
    models = f"; models: {', '.join(health.models[:5])}" if health.models else ""
    return Check(f"backend {kind}", health.ok, health.detail + models, optional)


def _template(settings: Settings) -> Check:
    """The system prompt must survive the chat template, and the stop tokens must exist."""
    from serving.embedded import EmbeddedBackend

    backend = EmbeddedBackend.from_settings(settings)
    probe = "북극성-점검-문장"
    messages = [Message(role="system", content=probe), Message(role="user", content="안녕")]
    try:
        loaded = backend.load()
        rendered = loaded.llm.detokenize(backend.prompt_tokens(messages), special=True)
    except Exception as exc:  # noqa: BLE001 - doctor reports every failure, whatever it is
        return Check("chat template", False, str(exc))
    if probe.encode() not in rendered:
        return Check("chat template", False,
                     f"{loaded.template.family} template lost the system prompt: set "
                     f"POLARIS_CHAT_TEMPLATE to the model's family")
    if len(loaded.stop_ids) < 2:
        return Check("chat template", False,
                     f"the model has none of the {loaded.template.family} end-of-turn tokens "
                     f"{loaded.template.stop}: set POLARIS_CHAT_TEMPLATE to the model's family")
    return Check("chat template", True,
                 f"{loaded.template.family}: system prompt kept, stop ids {sorted(loaded.stop_ids)}")
