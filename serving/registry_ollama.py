"""Register a GGUF (and an optional LoRA GGUF) with an Ollama server as a persona model.

Upload each file once (a blob the server already holds is skipped by its sha256), create the
model from the same ModelSpec that renders the Modelfile, check what the server stored, then
chat one line through Ollama and require that the model stops on its own.
"""

import hashlib
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

from serving.errors import BackendError, InvalidInput
from serving.modelfile import ModelSpec
from serving.ollama_backend import OllamaBackend
from serving.types import GenerationOptions, Stats

SMOKE_LINE = "안녕하세요. 한 문장으로만 답해 주세요. 지금 회사를 그만두는 건 어떻게 보세요?"
SMOKE_POLICIES = ("require", "warn", "skip")


@dataclass(frozen=True)
class Registration:
    name: str
    uploaded: tuple[str, ...]  # file names sent this time
    reused: tuple[str, ...]  # file names the server already had
    changed: bool  # False when the server's model was already exactly this one
    smoke_reply: str | None = None
    smoke_stats: Stats | None = None
    smoke_ok: bool | None = None


def file_digest(path: Path) -> str:
    """`sha256:<hex>` of a file, the name Ollama gives blobs."""
    sha = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(1 << 20):
            sha.update(chunk)
    return f"sha256:{sha.hexdigest()}"


def register(
    backend: OllamaBackend,
    name: str,
    spec: ModelSpec,
    *,
    gguf: Path | None,
    adapter: Path | None = None,
    progress: Callable[[str], None] = lambda line: None,
    smoke: str = "require",
    smoke_tokens: int = 96,
) -> Registration:
    """Create `name` on the server from `spec`; `gguf` None means spec.source names a model the
    server already has (FROM an Ollama model)."""
    if smoke not in SMOKE_POLICIES:
        raise InvalidInput(f"unknown smoke policy {smoke!r}: use {', '.join(SMOKE_POLICIES)}")
    uploaded: list[str] = []
    reused: list[str] = []

    def blob(path: Path) -> dict[str, str]:
        if not path.is_file():
            raise InvalidInput(f"{path} does not exist: check the path")
        digest = file_digest(path)
        if backend.has_blob(digest):
            progress(f"{path.name}: already on the server ({digest[:19]}…), not uploading")
            reused.append(path.name)
        else:
            progress(f"{path.name}: uploading {path.stat().st_size / 1e6:,.1f} MB")
            sent = backend.push_blob(path)
            if sent != digest:
                raise BackendError(f"{path} changed while it was uploading: run again")
            uploaded.append(path.name)
        return {path.name: digest}

    request: dict = {
        "template": spec.template.ollama_template,
        "system": spec.system,
        "parameters": spec.parameters,
        "license": spec.license,
        "messages": list(spec.messages) or None,
    }
    if gguf is not None:
        request["files"] = blob(gguf)
    else:
        request["from_"] = spec.source
    if adapter is not None:
        request["adapters"] = blob(adapter)
    before = backend.model_digest(name)
    backend.create_model(name, progress, **request)
    after = backend.model_digest(name)
    _check_stored(backend, name, spec)
    changed = before is None or before != after
    progress(f"{name}: {'created' if before is None else 'updated' if changed else 'unchanged'}")
    result = Registration(name, tuple(uploaded), tuple(reused), changed)
    if smoke == "skip":
        return result
    return _smoke(backend, name, result, smoke, smoke_tokens, progress)


def _check_stored(backend: OllamaBackend, name: str, spec: ModelSpec) -> None:
    shown = backend.show(name)
    if (shown.get("template") or "") != spec.template.ollama_template:
        raise BackendError(
            f"the server stored a different TEMPLATE for {name}: upgrade Ollama and register again"
        )
    if (shown.get("system") or None) != spec.system:
        raise BackendError(f"the server stored a different SYSTEM for {name}: register again")


def _smoke(backend: OllamaBackend, name: str, result: Registration, policy: str,
           max_tokens: int, progress: Callable[[str], None]) -> Registration:
    """One line through Ollama with the model's own SYSTEM; it must stop by itself."""
    completion = backend.for_model(name).complete([{"role": "user", "content": SMOKE_LINE}],
                               GenerationOptions(max_tokens=max_tokens, temperature=0.0))
    reply = " ".join(completion.text.split())
    stopped = completion.stats.stop_reason == "stop" and bool(reply)
    progress(f"smoke: {reply[:200] or '(empty reply)'}")
    if not stopped:
        problem = (f"{name} did not stop on its own within {max_tokens} tokens"
                   if reply else f"{name} answered nothing")
        advice = ("check the TEMPLATE and stop parameters, or use a model fine-tuned for chat "
                  "(the Gemma 3 270M base model alone never stops)")
        if policy == "require":
            raise BackendError(f"smoke chat failed: {problem}: {advice}")
        progress(f"warning: {problem}: {advice}")
    return Registration(result.name, result.uploaded, result.reused, result.changed,
                        completion.text, completion.stats, stopped)
