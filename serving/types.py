"""Plain data types shared by every backend."""

from dataclasses import dataclass, field
from typing import Literal, TypedDict

Role = Literal["system", "user", "assistant"]
StopReason = Literal["stop", "length", "cancelled", "error"]


class Message(TypedDict):
    role: Role
    content: str


@dataclass(frozen=True)
class GenerationOptions:
    """Sampling and limits for one generation. None means the backend's default."""

    max_tokens: int = 256
    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.1
    seed: int | None = None
    stop: tuple[str, ...] = ()
    num_ctx: int | None = None
    # Constrain the output to this JSON schema (llama.cpp grammar, Ollama `format`,
    # OpenAI `response_format`): the judge's answers must parse.
    json_schema: dict | None = field(default=None, hash=False)

    def __post_init__(self):
        if self.max_tokens < 1:
            raise ValueError(f"max_tokens must be at least 1, got {self.max_tokens}")
        if not 0 <= self.temperature <= 5:
            raise ValueError(f"temperature must be between 0 and 5, got {self.temperature}")


@dataclass(frozen=True)
class Stats:
    """What one generation cost. tok_per_s is the decode rate after the first token."""

    prompt_tokens: int = 0
    completion_tokens: int = 0
    ttft_s: float | None = None
    tok_per_s: float | None = None
    total_s: float = 0.0
    stop_reason: StopReason = "stop"


@dataclass(frozen=True)
class Chunk:
    """A streamed piece of text; the last chunk has done=True, empty text and the stats."""

    text: str = ""
    done: bool = False
    stats: Stats | None = None


@dataclass(frozen=True)
class Completion:
    text: str
    stats: Stats


@dataclass(frozen=True)
class ModelInfo:
    name: str
    size_bytes: int | None = None
    loaded: bool = False
    details: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Health:
    ok: bool
    backend: str
    detail: str
    models: tuple[str, ...] = ()


def decode_rate(completion_tokens: int, first_token_at: float | None, end_at: float) -> float | None:
    """Tokens per second after the first token (prefill excluded), as Ollama reports eval rate."""
    if first_token_at is None or completion_tokens < 2 or end_at <= first_token_at:
        return None
    return (completion_tokens - 1) / (end_at - first_token_at)
