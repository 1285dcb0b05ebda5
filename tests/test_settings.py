import pytest
from pydantic import ValidationError

from serving.backend import create_backend
from serving.errors import MissingDependency
from serving.lazy import require
from serving.settings import DEFAULT_GGUF, DEFAULT_LORA, Settings


def test_defaults_are_offline_and_embedded(monkeypatch, tmp_path):
    monkeypatch.delenv("POLARIS_DATABASE_URL")
    monkeypatch.delenv("POLARIS_MODELS_DIR")
    settings = Settings()
    assert settings.backend == "embedded" and settings.model == DEFAULT_GGUF
    assert settings.database_url == "sqlite:///data/polaris.db"
    assert settings.resolve_model_path() == settings.models_dir / DEFAULT_GGUF


def test_environment_and_dotenv_are_read(monkeypatch, tmp_path):
    (tmp_path / ".env").write_text("POLARIS_BACKEND=ollama\nPOLARIS_N_CTX=2048\n")
    monkeypatch.setenv("POLARIS_MODEL", "gemma3:270m")
    settings = Settings()
    assert (settings.backend, settings.n_ctx, settings.model) == ("ollama", 2048, "gemma3:270m")


@pytest.mark.parametrize(("key", "value", "message"), [
    ("POLARIS_STRATEGY", "clever", "unknown strategy"),
    ("POLARIS_CHAT_TEMPLATE", "alpaca", "unknown chat template"),
    ("POLARIS_N_CTX", "12", "greater than or equal to 256"),
    ("POLARIS_TEMPERATURE", "-1", "greater than or equal to 0"),
])
def test_bad_values_say_what_is_wrong(monkeypatch, key, value, message):
    monkeypatch.setenv(key, value)
    with pytest.raises(ValidationError, match=message):
        Settings()


def test_secrets_stay_out_of_repr_and_dumps(monkeypatch):
    monkeypatch.setenv("POLARIS_OLLAMA_PASSWORD", "hunter2-secret")
    monkeypatch.setenv("POLARIS_OPENAI_API_KEY", "sk-very-secret")
    settings = Settings()
    for text in (repr(settings), str(settings), settings.model_dump_json()):
        assert "hunter2-secret" not in text and "sk-very-secret" not in text
    assert settings.ollama_password.get_secret_value() == "hunter2-secret"


def test_paths_resolve_bare_names_into_the_models_folder(tmp_path):
    settings = Settings(models_dir=tmp_path)
    assert settings.resolve_model_path("x.gguf") == tmp_path / "x.gguf"
    assert settings.resolve_model_path("/abs/y.gguf").as_posix() == "/abs/y.gguf"
    assert settings.resolve_model_path("sub/z.gguf").as_posix() == "sub/z.gguf"


def test_the_shipped_adapter_applies_only_to_the_shipped_model(tmp_path):
    lora = tmp_path / DEFAULT_LORA
    settings = Settings(models_dir=tmp_path)
    assert settings.resolve_lora_path() is None  # not there: the bare base model
    assert settings.default_strategy() == "system"
    lora.write_bytes(b"GGUF")
    assert settings.resolve_lora_path() == lora
    assert settings.default_strategy() == "finetuned"
    assert settings.resolve_lora_path("other-model.gguf") is None
    assert settings.default_strategy("embedded", "other-model.gguf") == "system"
    assert settings.default_strategy("ollama", "gemma3-critic") == "system"
    assert Settings(models_dir=tmp_path, default_lora=False).resolve_lora_path() is None
    mine = tmp_path / "mine.gguf"
    assert Settings(models_dir=tmp_path, lora_path=mine).resolve_lora_path("x.gguf") == mine
    assert Settings(models_dir=tmp_path, strategy="fewshot").default_strategy() == "fewshot"


def test_the_judge_is_off_only_where_it_would_run_on_the_shipped_270m_model():
    assert Settings().judge_default() is False  # embedded default model
    assert Settings(judge_backend="ollama", judge_model="qwen2.5:7b").judge_default() is True
    assert Settings(judge_model="bigger-judge.gguf").judge_default() is True
    assert Settings(backend="openai", model="gpt-4o-mini").judge_default() is True
    assert Settings(judge=True).judge_default() is True
    assert Settings(backend="ollama", judge=False).judge_default() is False


def test_unknown_backend_kind_lists_the_known_ones():
    with pytest.raises(ValueError, match="embedded, ollama, openai"):
        create_backend("nope", Settings())


def test_missing_optional_package_gives_the_pip_extra():
    with pytest.raises(MissingDependency, match=r"pip install 'polaris\[ollama\]'"):
        require("polaris_no_such_module", package="ollama", extra="ollama", purpose="Ollama")
