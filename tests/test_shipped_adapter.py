"""The committed critics adapter (models/critics-lora.gguf) is the embedded default and does
what it was trained for: replies in the card's register that end by themselves."""

from pathlib import Path

import pytest

llama_cpp = pytest.importorskip("llama_cpp")

from chatbot.engine import ChatEngine
from serving.embedded import EmbeddedBackend
from serving.persona import load_personas
from serving.prompting import build_messages
from serving.settings import DEFAULT_LORA, Settings
from serving.types import GenerationOptions
from training.quality import turn_register

ADAPTER = Path(__file__).resolve().parents[1] / "models" / DEFAULT_LORA
ASK = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."


def test_the_adapter_is_committed_small_and_a_gguf_lora():
    assert ADAPTER.is_file(), "models/critics-lora.gguf is committed with the repository"
    assert ADAPTER.stat().st_size <= 20 * 1024 * 1024
    from gguf import GGUFReader

    reader = GGUFReader(str(ADAPTER))
    fields = {name: field for name, field in reader.fields.items()}
    kind = fields["general.type"]
    assert bytes(kind.parts[kind.data[0]]).decode() == "adapter"
    assert any(t.name.endswith(".lora_a") for t in reader.tensors)


def test_default_settings_load_it_with_the_finetuned_strategy(model_path):
    settings = Settings()
    assert settings.resolve_lora_path() == settings.models_dir / DEFAULT_LORA
    backend = EmbeddedBackend.from_settings(settings)
    assert backend.lora_path == settings.models_dir / DEFAULT_LORA
    assert backend.health().detail.endswith(f"+ {DEFAULT_LORA}")
    chat = ChatEngine(settings).start_session(["team-lead"])
    assert (chat.backend, chat.strategy) == ("embedded", "finetuned")


def test_tuned_critics_keep_their_register_and_stop_unlike_the_base(model_path):
    options = GenerationOptions(max_tokens=96, temperature=0.7, seed=3)
    personas = load_personas()
    tuned = EmbeddedBackend(model_path, lora_path=ADAPTER, n_ctx=1024)
    base = EmbeddedBackend(model_path, n_ctx=1024)
    stops = {"tuned": 0, "base": 0}
    registers = 0
    for persona in personas.values():
        messages = build_messages("finetuned", persona, [{"role": "user", "content": ASK}])
        reply = tuned.complete(messages, options)
        stops["tuned"] += reply.stats.stop_reason == "stop"
        registers += turn_register(reply.text.strip()) == persona.speech
        stops["base"] += base.complete(messages, options).stats.stop_reason == "stop"
    assert stops["tuned"] >= 4, stops
    assert stops["tuned"] > stops["base"], stops
    assert registers >= 3, f"{registers}/5 replies in the card's register"
