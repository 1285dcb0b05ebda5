"""All configuration in one place: environment variables with prefix POLARIS_, or a .env file."""

from pathlib import Path

from pydantic import Field, SecretStr, ValidationError, field_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_GGUF = "gemma-3-270m-q4_k_m.gguf"
DEFAULT_LORA = "critics-lora.gguf"  # the shipped critics adapter, trained on DEFAULT_GGUF
STRATEGIES = ("plain", "system", "fewshot", "finetuned")


class Settings(BaseSettings):
    model_config = SettingsConfigDict(
        env_prefix="POLARIS_", env_file=".env", env_file_encoding="utf-8", extra="ignore"
    )

    database_url: str = Field(
        "sqlite:///data/polaris.db", description="Any SQLAlchemy URL (SQLite or PostgreSQL)."
    )
    data_dir: Path = Path("data")
    models_dir: Path = Path("models")
    personas_dir: Path | None = Field(None, description="Default: the shipped chatbot/personas/.")

    backend: str = Field("embedded", description="embedded | ollama | openai")
    model: str = Field(DEFAULT_GGUF, description="GGUF file (embedded) or model name (others).")
    strategy: str = Field("auto", description="plain | system | fewshot | finetuned | auto "
                          "(finetuned on the embedded model with its adapter, else system)")

    # embedded (llama.cpp in process)
    lora_path: Path | None = Field(None, description="A GGUF LoRA for the embedded model.")
    default_lora: bool = Field(True, description="Apply the shipped critics adapter "
                               "(models_dir/critics-lora.gguf) to the default model.")
    chat_template: str | None = Field(None, description="gemma3 | llama3 | chatml | mistral")
    n_ctx: int = Field(4096, ge=256, le=1_048_576)
    n_threads: int | None = Field(None, ge=1)
    n_gpu_layers: int = 0

    # generation defaults
    max_tokens: int = Field(256, ge=1, le=32_768)
    temperature: float = Field(0.8, ge=0, le=5)

    judge_backend: str | None = Field(None, description="The persuasion judge's backend "
                                      "(default: POLARIS_BACKEND).")
    judge_model: str | None = Field(None, description="The judge's model (default: the "
                                    "backend's default model).")
    judge_max_tokens: int = Field(512, ge=64, le=8_192)
    judge: bool | None = Field(None, description="Run the persuasion judge after each message "
                               "(default: on, except on the shipped 270M model, which cannot "
                               "judge and would only slow every message down).")

    ollama_host: str = "http://127.0.0.1:11434"
    ollama_username: str | None = None
    ollama_password: SecretStr | None = None
    ollama_keep_alive: str = "10m"

    openai_base_url: str = "http://127.0.0.1:8000/v1"
    openai_api_key: SecretStr = SecretStr("not-needed")

    request_timeout_s: float = Field(120.0, gt=0)

    @field_validator("strategy")
    @classmethod
    def _known_strategy(cls, value: str) -> str:
        if value not in (*STRATEGIES, "auto"):
            raise ValueError(f"unknown strategy {value!r}: use one of {', '.join(STRATEGIES)} "
                             f"or auto")
        return value

    @field_validator("chat_template")
    @classmethod
    def _known_template(cls, value: str | None) -> str | None:
        from serving.templates import FAMILIES

        if value and value not in FAMILIES:
            raise ValueError(f"unknown chat template {value!r}: use one of {', '.join(FAMILIES)}")
        return value or None

    def resolve_lora_path(self, model: str | None = None) -> Path | None:
        """The adapter for an embedded model: POLARIS_LORA_PATH, else the shipped critics
        adapter when the model is the shipped base (it fits no other model)."""
        if self.lora_path:
            return self.lora_path
        shipped = self.models_dir / DEFAULT_LORA
        if (self.default_lora and self.resolve_model_path(model).name == DEFAULT_GGUF
                and shipped.is_file()):
            return shipped
        return None

    def default_strategy(self, backend: str | None = None, model: str | None = None) -> str:
        """The configured strategy; `auto` is finetuned where a persona adapter is loaded."""
        if self.strategy != "auto":
            return self.strategy
        kind = backend or self.backend
        if kind == "embedded" and self.resolve_lora_path(model) is not None:
            return "finetuned"
        return "system"

    def judge_default(self) -> bool:
        """Whether the UI runs the judge unless the user toggles it."""
        if self.judge is not None:
            return self.judge
        kind = self.judge_backend or self.backend
        model = self.judge_model or (self.model if kind == self.backend else None)
        return not (kind == "embedded" and self.resolve_model_path(model).name == DEFAULT_GGUF)

    def resolve_model_path(self, model: str | None = None) -> Path:
        """A GGUF name or path as a path: bare names are looked up in models_dir."""
        path = Path(model or self.model).expanduser()
        if not path.is_absolute() and path.parent == Path("."):
            path = self.models_dir / path
        return path


def load_settings() -> Settings:
    """The settings, or InvalidInput naming the POLARIS_ variable at fault and why."""
    from serving.errors import InvalidInput

    try:
        return Settings()
    except ValidationError as exc:
        error = exc.errors()[0]
        field = str(error["loc"][0]).upper() if error["loc"] else "?"
        raise InvalidInput(f"setting POLARIS_{field}: {error['msg']}") from None

