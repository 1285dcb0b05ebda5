"""Training building blocks that need no model: configs, and records to token ids."""

from typing import ClassVar

import pytest

from serving.templates import get_template
from training.config import PROJECTIONS, ConfigError, load_config
from training.examples import IGNORE, encode_chat


def write(tmp_path, text):
    path = tmp_path / "run.yaml"
    path.write_text(text, encoding="utf-8")
    return path


def test_config_defaults_follow_the_original_study(tmp_path):
    config = load_config(write(tmp_path, "base_model: m.gguf\ndata: [d.jsonl]\noutput_dir: out\n"))
    assert (config.lora.r, config.lora.dropout, config.learning_rate) == (32, 0.05, 2e-4)
    assert (config.batch_size, config.grad_accum, config.max_length) == (1, 4, 512)
    assert config.lora.target_modules == PROJECTIONS and len(PROJECTIONS) == 7


def test_overrides_are_typed_and_dotted(tmp_path):
    path = write(tmp_path, "base_model: m\ndata: [d]\noutput_dir: out\n")
    config = load_config(path, ["max_steps=20", "lora.r=8", "quantization=qlora"])
    assert (config.max_steps, config.lora.r, config.quantization) == (20, 8, "qlora")


@pytest.mark.parametrize(("text", "overrides", "message"), [
    ("base_model: m\ndata: [d]\noutput_dir: o\n", ["max_steps"], "key=value"),
    ("base_model: m\ndata: [d]\noutput_dir: o\n", ["lora.r=0"], "lora.r"),
    ("base_model: m\ndata: [d]\noutput_dir: o\nsteps: 3\n", [], "steps"),
    ("base_model: m\noutput_dir: o\n", [], "data"),
    ("base_model: [unclosed\n", [], r"run\.yaml:2: not valid YAML"),
])
def test_bad_configs_say_what_is_wrong(tmp_path, text, overrides, message):
    with pytest.raises(ConfigError, match=message):
        load_config(write(tmp_path, text), overrides)


class CharTokenizer:
    """Stands in for a HF tokenizer: one id per character, specials from a fixed table."""

    unk_token_id = 0
    specials: ClassVar[dict[str, int]] = {"<bos>": 1, "<start_of_turn>": 2, "<end_of_turn>": 3}

    def convert_tokens_to_ids(self, token):
        return self.specials.get(token, self.unk_token_id)

    def __call__(self, text, add_special_tokens=False):
        return {"input_ids": [100 + ord(c) % 1000 for c in text]}


def test_only_the_assistants_words_and_end_of_turn_are_trained():
    messages = [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                {"role": "assistant", "content": "AB"}, {"role": "user", "content": "V"},
                {"role": "assistant", "content": "C"}]
    example = encode_chat(CharTokenizer(), get_template("gemma3"), messages, max_length=100)
    tok = CharTokenizer()
    trained = [i for i, label in zip(example["input_ids"], example["labels"], strict=True)
               if label != IGNORE]
    newline = tok("\n")["input_ids"]
    assert trained == [*tok("AB")["input_ids"], 3, *newline, *tok("C")["input_ids"], 3, *newline]
    assert example["input_ids"][0] == 1  # <bos>
    assert all(label in (IGNORE, token) for label, token in
               zip(example["labels"], example["input_ids"], strict=True))


def test_examples_that_lose_every_label_to_truncation_are_dropped():
    messages = [{"role": "user", "content": "U" * 50}, {"role": "assistant", "content": "A"}]
    assert encode_chat(CharTokenizer(), get_template("gemma3"), messages, max_length=20) is None


def test_unknown_special_token_names_the_fix():
    messages = [{"role": "user", "content": "U"}, {"role": "assistant", "content": "A"}]
    with pytest.raises(ValueError, match="template"):
        encode_chat(CharTokenizer(), get_template("chatml"), messages, max_length=50)


@pytest.mark.slow
def test_training_ids_equal_the_embedded_backends_prompt_ids(model_path, tmp_path, monkeypatch):
    """The base GGUF loaded through transformers tokenizes a corpus conversation to exactly
    the ids llama.cpp builds for the same conversation (~40 s: dequantizes the GGUF)."""
    from serving.embedded import EmbeddedBackend
    from training import base, corpus
    from training.formats import load

    monkeypatch.setattr(base, "CACHE", tmp_path / "cache")
    tokenizer = base.load_tokenizer(base.resolve_base(str(model_path)))
    record = next(r for r in load(corpus.train_path("team-lead")).records if len(r.messages) > 3)
    messages = [m.model_dump() for m in record.messages]
    example = encode_chat(tokenizer, get_template("gemma3"), messages, max_length=4096)
    backend = EmbeddedBackend(model_path, n_ctx=2048)
    llm = backend.load().llm
    expected = [t for s in get_template("gemma3").render(messages, add_generation_prompt=False)
                for t in llm.tokenize(s.text.encode(), add_bos=False, special=s.special)]
    assert example["input_ids"] == expected
