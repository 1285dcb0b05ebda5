"""ChatBackend over any OpenAI-compatible server (llama.cpp server, vLLM, hosted APIs)."""

import time
from collections.abc import Iterator, Sequence
from threading import Event
from typing import TYPE_CHECKING, Any

from pydantic import SecretStr

from serving.backend import collect
from serving.errors import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    ModelNotFound,
    PolarisError,
    PromptTooLong,
    translated,
)
from serving.lazy import require
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

_STOP_REASONS = {"stop": "stop", "length": "length"}


def _openai():
    return require(
        "openai", package="openai", extra="openai", purpose="The OpenAI-compatible backend"
    )


def request_params(model: str, messages: Sequence[Message], options: GenerationOptions) -> dict:
    """Arguments of chat.completions.create; only the parameters every OpenAI server knows."""
    params: dict[str, Any] = {
        "model": model,
        "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
        "stream": True,
        "temperature": options.temperature,
        "top_p": options.top_p,
        "max_tokens": options.max_tokens,
    }
    if options.seed is not None:
        params["seed"] = options.seed
    if options.stop:
        params["stop"] = list(options.stop)
    if options.json_schema:
        params["response_format"] = {
            "type": "json_schema",
            "json_schema": {"name": options.json_schema.get("title", "answer"),
                            "schema": options.json_schema, "strict": True},
        }
    return {key: value for key, value in params.items() if value is not None}


class OpenAIBackend:
    """Chat through the official `openai` client against an OpenAI-compatible base URL."""

    kind = "openai"

    def __init__(
        self,
        base_url: str,
        model: str,
        api_key: str | SecretStr | None = None,
        timeout: float = 120.0,
    ):
        self.base_url = base_url
        self.model = model
        self.timeout = timeout
        if isinstance(api_key, SecretStr):
            api_key = api_key.get_secret_value()
        self._api_key = api_key or "not-needed"  # local servers ignore it; the client wants one
        self._usage_supported = True  # flips off once a server rejects stream_options
        self._client_instance = None

    @classmethod
    def from_settings(cls, settings: "Settings", model: str | None = None) -> "OpenAIBackend":
        return cls(
            base_url=settings.openai_base_url,
            model=model or settings.model,
            api_key=settings.openai_api_key,
            timeout=settings.request_timeout_s,
        )

    def __repr__(self) -> str:
        return f"OpenAIBackend(base_url={self.base_url!r}, model={self.model!r}, api_key=***)"

    def _client(self):
        if self._client_instance is None:
            self._client_instance = _openai().OpenAI(
                base_url=self.base_url, api_key=self._api_key, timeout=self.timeout, max_retries=0
            )
        return self._client_instance

    def stream(
        self,
        messages: Sequence[Message],
        options: GenerationOptions | None = None,
        cancel: Event | None = None,
    ) -> Iterator[Chunk]:
        """Text deltas as they arrive, then a done chunk (token counts from `usage` if sent)."""
        options = options or GenerationOptions()
        started = time.perf_counter()
        if cancel is not None and cancel.is_set():
            yield Chunk(done=True, stats=Stats(stop_reason="cancelled"))
            return
        first_at: float | None = None
        pieces = 0
        finish: str | None = None
        usage = None
        cancelled = False
        with self._translate_errors():
            events = self._open(request_params(self.model, messages, options))
            try:
                for event in events:
                    usage = event.usage or usage
                    for choice in event.choices:
                        finish = choice.finish_reason or finish
                        if choice.delta and choice.delta.content:
                            first_at = first_at or time.perf_counter()
                            pieces += 1
                            yield Chunk(choice.delta.content)
                    if cancel is not None and cancel.is_set():
                        cancelled = True
                        break
            finally:
                events.close()  # drops the connection, so the server stops generating
        end = time.perf_counter()
        if finish is None and not cancelled:
            raise BackendError(
                f"the stream from {self.base_url} ended early (no finish_reason): check the "
                "server's log; llama_cpp.server does this when the prompt exceeds its --n_ctx"
            )
        completion = usage.completion_tokens if usage else pieces
        yield Chunk(
            done=True,
            stats=Stats(
                prompt_tokens=usage.prompt_tokens if usage else 0,
                completion_tokens=completion,
                ttft_s=None if first_at is None else first_at - started,
                tok_per_s=decode_rate(completion, first_at, end),
                total_s=end - started,
                stop_reason="cancelled" if cancelled else _STOP_REASONS.get(finish, "stop"),
            ),
        )

    def _open(self, params: dict):
        """Start the stream, asking for usage; once without it if the server refuses the option."""
        create = self._client().chat.completions.create
        if not self._usage_supported:
            return create(**params)
        try:
            return create(**params, stream_options={"include_usage": True})
        except _openai().BadRequestError as exc:
            if "stream_options" not in f"{exc.message} {exc.body}":
                raise
            self._usage_supported = False
            return create(**params)

    def complete(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Completion:
        return collect(self.stream(messages, options))

    def models(self) -> list[ModelInfo]:
        with self._translate_errors():
            listed = list(self._client().models.list())
        return [
            ModelInfo(name=m.id, details={"owned_by": m.owned_by} if m.owned_by else {})
            for m in listed
        ]

    def health(self) -> Health:
        """Reachable and which models it serves; never raises."""
        try:
            names = tuple(m.name for m in self.models())
        except PolarisError as exc:
            return Health(False, self.kind, str(exc))
        detail = f"{self.base_url} serves {len(names)} model(s)"
        return Health(True, self.kind, detail, models=names)

    def _scrub(self, text: str) -> str:
        # Very short keys ("x") would mangle messages and are not secrets anyway.
        return text.replace(self._api_key, "***") if len(self._api_key) >= 4 else text

    def _translate_errors(self):
        """Turn client and transport errors into Polaris errors that say what to do."""
        return translated(self._map_error)

    def _map_error(self, exc: Exception) -> BackendError | None:
        openai = _openai()
        url = self.base_url
        if isinstance(exc, openai.APITimeoutError):
            return BackendUnavailable(
                f"OpenAI-compatible server at {url} did not answer within {self.timeout:g} s: "
                "check that it is running, or raise POLARIS_REQUEST_TIMEOUT_S"
            )
        if isinstance(exc, openai.APIConnectionError):
            return BackendUnavailable(
                f"OpenAI-compatible server not reachable at {url}: start it (e.g. "
                "`python -m llama_cpp.server --model models/X.gguf`) or set POLARIS_OPENAI_BASE_URL"
            )
        if not isinstance(exc, openai.APIStatusError):
            if isinstance(exc, openai.OpenAIError):  # e.g. a reply that is not the OpenAI schema
                return BackendError(self._scrub(f"unexpected reply from {url}: {exc}"))
            return None
        message = self._scrub(exc.message)
        if isinstance(exc, openai.NotFoundError):
            return ModelNotFound(self._not_found_message(message))
        if isinstance(exc, openai.AuthenticationError | openai.PermissionDeniedError):
            return BackendError(
                f"{url} refused the API key (HTTP {exc.status_code}): set POLARIS_OPENAI_API_KEY"
            )
        if isinstance(exc, openai.RateLimitError) or exc.status_code == 503:
            return BackendBusy(f"{url} is busy (HTTP {exc.status_code}): retry in a moment")
        if exc.code == "context_length_exceeded":
            return PromptTooLong(f"{message}: shorten the conversation or the max tokens")
        return BackendError(f"{url} failed (HTTP {exc.status_code}): {message}")

    def _not_found_message(self, message: str) -> str:
        try:
            names = [m.name for m in self.models()]
        except BackendError:
            names = []
        if names:
            offered = f"it serves: {', '.join(names)}"
        else:
            offered = "check POLARIS_OPENAI_BASE_URL (it usually ends in /v1)"
        return f"model {self.model!r} not found at {self.base_url} ({message}); {offered}"
