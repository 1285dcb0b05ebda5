"""ChatBackend over an Ollama server (local, remote or behind a tunnel with basic auth)."""

import json
import time
from collections.abc import Callable, Iterable, Iterator, Sequence
from pathlib import Path
from threading import Event
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlsplit, urlunsplit

import httpx
from pydantic import SecretStr

from serving.backend import collect
from serving.errors import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    ModelNotFound,
    PolarisError,
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


def _ollama():
    return require("ollama", package="ollama", extra="ollama", purpose="The Ollama backend")


# ngrok's free tier answers browsers with an HTML interstitial unless this header is sent; any
# other server ignores it.
TUNNEL_HEADERS = {"ngrok-skip-browser-warning": "1"}


def _display_host(host: str) -> str:
    """The host without any user:password@ part, fit for messages."""
    parts = urlsplit(host)
    if "@" not in parts.netloc:
        return host
    return urlunsplit(parts._replace(netloc=parts.netloc.rsplit("@", 1)[1]))


def split_credentials(host: str) -> tuple[str, str | None, str | None]:
    """`https://user:pass@host` as (`https://host`, user, pass), percent-decoded; the official
    client drops the user:pass part of a host, so it travels as basic auth instead."""
    parts = urlsplit(host if "://" in host else f"http://{host}")
    if "@" not in parts.netloc:
        return host, None, None
    userinfo, _, hostport = parts.netloc.rpartition("@")
    username, _, password = userinfo.partition(":")
    clean = urlunsplit(parts._replace(netloc=hostport))
    return clean, unquote(username) or None, unquote(password) or None


def iter_ndjson(pieces: Iterable[str]) -> Iterator[dict]:
    """JSON objects from an NDJSON stream however its text arrives: split across reads, several
    in one read, or run together without a newline (some proxies merge chunks). A complete line
    that is not JSON raises ValueError at once; an incomplete one waits for more text."""
    decoder = json.JSONDecoder()
    buffer = ""
    for piece in pieces:
        buffer += piece
        while buffer := buffer.lstrip():
            try:
                value, end = decoder.raw_decode(buffer)
            except json.JSONDecodeError:
                if "\n" in buffer:  # JSON lines hold no raw newline: this one is broken
                    raise
                break
            if not isinstance(value, dict):
                raise ValueError(  # noqa: TRY004 - bad input from the wire, like bad JSON
                    f"expected a JSON object per line, got {type(value).__name__}")
            buffer = buffer[end:]
            yield value
    if buffer.strip():
        json.loads(buffer)  # raises: the stream ended inside a line


def ollama_options(options: GenerationOptions, num_ctx: int) -> dict[str, Any]:
    """GenerationOptions as Ollama option names; None values are left to the model's defaults."""
    mapped = {
        "temperature": options.temperature,
        "top_p": options.top_p,
        "top_k": options.top_k,
        "min_p": options.min_p,
        "repeat_penalty": options.repeat_penalty,
        "seed": options.seed,
        "num_predict": options.max_tokens,
        "stop": list(options.stop) or None,
        # Always explicit: Ollama's default context depends on the server's free VRAM.
        "num_ctx": options.num_ctx or num_ctx,
    }
    return {key: value for key, value in mapped.items() if value is not None}


def _with_tag(name: str) -> str:
    return name if ":" in name else f"{name}:latest"


class OllamaBackend:
    """Chat with a model served by Ollama through the official `ollama` client."""

    kind = "ollama"

    def __init__(
        self,
        host: str,
        model: str,
        keep_alive: str | None = "10m",
        num_ctx: int = 4096,
        timeout: float = 120.0,
        username: str | None = None,
        password: str | SecretStr | None = None,
    ):
        host, url_username, url_password = split_credentials(host)
        self.host = host
        self.model = model
        self.keep_alive = keep_alive
        self.num_ctx = num_ctx
        self.timeout = timeout
        self.username = username or url_username
        if isinstance(password, SecretStr):
            password = password.get_secret_value()
        self._password = password or url_password or None
        self._client_instance = None

    @classmethod
    def from_settings(cls, settings: "Settings", model: str | None = None) -> "OllamaBackend":
        return cls(
            host=settings.ollama_host,
            model=model or settings.model,
            keep_alive=settings.ollama_keep_alive,
            num_ctx=settings.n_ctx,
            timeout=settings.request_timeout_s,
            username=settings.ollama_username,
            password=settings.ollama_password,
        )

    def __repr__(self) -> str:
        auth = f", username={self.username!r}, password=***" if self._password else ""
        return f"OllamaBackend(host={_display_host(self.host)!r}, model={self.model!r}{auth})"

    def _client(self):
        if self._client_instance is None:
            kwargs: dict[str, Any] = {
                "host": self.host, "timeout": self.timeout, "headers": TUNNEL_HEADERS,
            }
            if self.username or self._password:
                kwargs["auth"] = (self.username or "", self._password or "")
            self._client_instance = _ollama().Client(**kwargs)
        return self._client_instance

    def stream(
        self,
        messages: Sequence[Message],
        options: GenerationOptions | None = None,
        cancel: Event | None = None,
    ) -> Iterator[Chunk]:
        """Text pieces as Ollama produces them, then a done chunk with Ollama's own counts."""
        options = options or GenerationOptions()
        started = time.perf_counter()
        if cancel is not None and cancel.is_set():
            yield Chunk(done=True, stats=Stats(total_s=0.0, stop_reason="cancelled"))
            return
        first_at: float | None = None
        pieces = 0
        final = None
        with self._translate_errors():
            request = {
                "model": self.model,
                "messages": [{"role": m["role"], "content": m["content"]} for m in messages],
                "stream": True,
                "options": ollama_options(options, self.num_ctx),
                "keep_alive": self.keep_alive,
                **({"format": options.json_schema} if options.json_schema else {}),
            }
            parts = self._chat_parts(request)
            try:
                for part in parts:
                    text = part.message.content if part.message else None
                    if text:
                        first_at = first_at or time.perf_counter()
                        pieces += 1
                        yield Chunk(text)
                    if part.done:
                        final = part
                        break
                    if cancel is not None and cancel.is_set():
                        break
            finally:
                parts.close()  # closes the HTTP response, which makes Ollama stop generating
        end = time.perf_counter()
        if final is None and not (cancel is not None and cancel.is_set()):
            raise BackendError(
                f"the Ollama stream ended early (no final message from {self._shown_host}); "
                "the server may have restarted: try again"
            )
        yield Chunk(done=True, stats=self._stats(final, pieces, started, first_at, end))

    def _chat_parts(self, request: dict) -> Iterator[Any]:
        """POST /api/chat on the official client's HTTP connection (its host, auth, headers),
        parsing the NDJSON reply with iter_ndjson: the client's own reader fails when a proxy
        merges lines. Closing this generator closes the response, which stops generation."""
        ollama = _ollama()
        http = self._client()._client
        with http.stream("POST", "/api/chat", json=request) as response:
            if response.is_error:
                response.read()
                raise ollama.ResponseError(response.text, response.status_code)
            for part in iter_ndjson(response.iter_text()):
                if part.get("error"):
                    raise ollama.ResponseError(str(part["error"]))
                yield ollama.ChatResponse(**part)

    def _stats(self, final, pieces: int, started: float, first_at: float | None, end: float):
        if final is None:
            return Stats(
                completion_tokens=pieces,
                ttft_s=None if first_at is None else first_at - started,
                tok_per_s=decode_rate(pieces, first_at, end),
                total_s=end - started,
                stop_reason="cancelled",
            )
        completion = final.eval_count if final.eval_count is not None else pieces
        if final.eval_count and final.eval_duration:
            rate = final.eval_count / (final.eval_duration / 1e9)
        else:
            rate = decode_rate(completion, first_at, end)
        return Stats(
            prompt_tokens=final.prompt_eval_count or 0,
            completion_tokens=completion,
            ttft_s=None if first_at is None else first_at - started,
            tok_per_s=rate,
            total_s=end - started,
            stop_reason=_STOP_REASONS.get(final.done_reason or "stop", "stop"),
        )

    def complete(
        self, messages: Sequence[Message], options: GenerationOptions | None = None
    ) -> Completion:
        return collect(self.stream(messages, options))

    def models(self) -> list[ModelInfo]:
        """Models pulled on the server; loaded=True for those in memory now (`ollama ps`)."""
        with self._translate_errors():
            listed = self._client().list().models
        running = self._running()
        return [
            ModelInfo(
                name=m.model or "",
                size_bytes=int(m.size) if m.size is not None else None,
                loaded=m.model in running,
                details=m.details.model_dump(exclude_none=True) if m.details else {},
            )
            for m in listed
        ]

    def _running(self) -> set[str]:
        try:
            with self._translate_errors():
                return {m.model or m.name for m in self._client().ps().models}
        except BackendError:  # an old server or a proxy without /api/ps: report nothing loaded
            return set()

    def version(self) -> str:
        """The server's version (GET /api/version)."""
        with self._translate_errors():
            # ollama-python has no version() call; /api/version is the documented endpoint.
            reply = self._client()._request_raw("GET", "/api/version").json()
        return str(reply.get("version", "?")) if isinstance(reply, dict) else "?"

    # -- registration (serving/registry_ollama.py) ------------------------------------------

    def has_blob(self, digest: str) -> bool:
        """Whether the server already holds the file with this sha256 digest (HEAD)."""
        try:
            with self._translate_errors():
                self._client()._request_raw("HEAD", f"/api/blobs/{digest}")
        except ModelNotFound:  # our 404 mapping; for a blob it only means "not uploaded yet"
            return False
        return True

    def push_blob(self, path: Path) -> str:
        """Upload a file as a blob; its digest."""
        with self._translate_errors():
            return self._client().create_blob(path)

    def create_model(self, name: str, on_status: Callable[[str], None], **request: Any) -> None:
        """POST /api/create (streamed), calling on_status with each status line."""
        with self._translate_errors():
            for update in self._client().create(model=name, stream=True, **request):
                if update.status:
                    on_status(update.status)

    def model_digest(self, name: str) -> str | None:
        """The digest of the server's model `name` (None: not there)."""
        with self._translate_errors():
            listed = self._client().list().models
        return next((m.digest for m in listed if m.model == _with_tag(name)), None)

    def for_model(self, model: str) -> "OllamaBackend":
        """The same server and credentials, another model."""
        return OllamaBackend(self.host, model, keep_alive=self.keep_alive, num_ctx=self.num_ctx,
                             timeout=self.timeout, username=self.username,
                             password=self._password)

    def show(self, name: str | None = None) -> dict:
        """The server's record of a model (POST /api/show) as JSON: template, system,
        parameters, details (the client's ShowResponse has no `system`)."""
        with self._translate_errors():
            reply = self._client()._request_raw(
                "POST", "/api/show", json={"model": name or self.model}).json()
        if not isinstance(reply, dict):
            raise ValueError("/api/show did not answer a JSON object")  # noqa: TRY004
        return reply

    def health(self) -> Health:
        """Reachable, which version, which models; never raises."""
        try:
            version = self.version()
            names = tuple(m.name for m in self.models())
        except PolarisError as exc:
            return Health(False, self.kind, str(exc))
        detail = f"Ollama {version} at {self._shown_host} with {len(names)} model(s)"
        if _with_tag(self.model) not in {_with_tag(n) for n in names}:
            detail += f"; model {self.model!r} is not pulled: run `ollama pull {self.model}`"
        return Health(True, self.kind, detail, models=names)

    @property
    def _shown_host(self) -> str:
        return _display_host(self.host)

    def _scrub(self, text: str) -> str:
        return text.replace(self._password, "***") if self._password else text

    def _translate_errors(self):
        """Turn client and transport errors into Polaris errors that say what to do."""
        return translated(self._map_error)

    def _map_error(self, exc: Exception) -> BackendError | None:
        host = self._shown_host
        if isinstance(exc, ConnectionError | httpx.ConnectError | httpx.ConnectTimeout):
            return BackendUnavailable(
                f"Ollama is not reachable at {host}: start it with `ollama serve` "
                "(or `docker compose up -d ollama`) or set POLARIS_OLLAMA_HOST"
            )
        if isinstance(exc, httpx.TimeoutException):
            return BackendError(
                f"Ollama at {host} did not answer within {self.timeout:g} s: it may be loading "
                "the model; try again or raise POLARIS_REQUEST_TIMEOUT_S"
            )
        if isinstance(exc, httpx.HTTPError):
            return BackendUnavailable(
                self._scrub(f"the connection to Ollama at {host} broke: {exc}")
            )
        if isinstance(exc, _ollama().ResponseError):
            return self._map_response_error(exc.status_code, self._scrub(str(exc.error)))
        if isinstance(exc, ValueError):  # bad JSON: something other than Ollama answered
            return BackendError(
                f"unexpected reply from {host}: is it an Ollama server? Check POLARIS_OLLAMA_HOST"
            )
        return None

    def _map_response_error(self, status: int, message: str) -> BackendError:
        host = self._shown_host
        if status == 404:
            return ModelNotFound(
                f"model {self.model!r} is not on the Ollama server at {host} ({message}): "
                f"run `ollama pull {self.model}` or `polaris serve register`"
            )
        if status == 503:
            return BackendBusy(
                f"Ollama at {host} is busy serving other requests ({message}): "
                "retry or raise OLLAMA_NUM_PARALLEL on the server"
            )
        if status in (401, 403):
            return BackendError(
                f"Ollama at {host} refused the credentials (HTTP {status}): "
                "set POLARIS_OLLAMA_USERNAME / POLARIS_OLLAMA_PASSWORD"
            )
        where = "" if status < 0 else f" (HTTP {status})"
        if "loras are not yet implemented" in message.lower():
            return BackendError(
                f"Ollama at {host} cannot apply a LoRA ADAPTER to this model{where}: {message}; "
                "register a merged GGUF instead (`polaris export gguf RUN_DIR`)"
            )
        return BackendError(f"Ollama at {host} failed{where}: {message}")
