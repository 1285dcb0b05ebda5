"""Training run configuration: one YAML file per recipe, overridable with key=value."""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.errors import InvalidInput

PROJECTIONS = ["q_proj", "k_proj", "v_proj", "o_proj", "gate_proj", "up_proj", "down_proj"]


class ConfigError(InvalidInput):
    """A training config is malformed; the message names the file and key."""


class LoraConfig(BaseModel):
    model_config = ConfigDict(extra="forbid")
    r: int = Field(32, ge=1)
    alpha: int = Field(64, ge=1)
    dropout: float = Field(0.05, ge=0, lt=1)
    target_modules: list[str] = Field(default_factory=lambda: list(PROJECTIONS))


class TrainConfig(BaseModel):
    """Defaults follow the original study: LoRA r=32 on all seven projections, dropout 0.05,
    lr 2e-4, batch 1 x grad-acc 4, max length 512."""

    model_config = ConfigDict(extra="forbid")

    kind: Literal["sft", "dpo"] = "sft"
    base_model: str = Field(description="HF folder, hub id, or a .gguf file")
    template: str | None = Field(None, description="chat template family; default from the base")
    data: list[str] = Field(min_length=1, description="chat JSONL (sft) or preference JSONL (dpo)")
    personas_dir: str | None = Field(None, description="persona cards (default: the shipped critics)")
    system_prompt: Literal["card", "short"] = Field(
        "card", description="card: the data's persona system prompts as they are; short: the "
        "card's one-line prompt instead (the `finetuned` strategy), ~3x fewer tokens per example")
    init_adapter: str | None = Field(None, description="SFT run dir (or adapter) to start from (dpo)")
    output_dir: str
    quantization: Literal["none", "qlora"] = "none"
    lora: LoraConfig = Field(default_factory=LoraConfig)
    learning_rate: float = Field(2e-4, gt=0)
    epochs: float = Field(1.0, gt=0)
    max_steps: int = -1
    batch_size: int = Field(1, ge=1)
    grad_accum: int = Field(4, ge=1)
    max_length: int = Field(512, ge=16)
    warmup_ratio: float = Field(0.03, ge=0, lt=1)
    logging_steps: int = Field(10, ge=1)
    save_steps: int = Field(500, ge=1)
    seed: int = 42
    beta: float = Field(0.1, gt=0, description="DPO temperature")
    resume: bool = Field(True, description="continue from the newest checkpoint in output_dir")


def _set(data: dict[str, Any], dotted: str, raw: str) -> None:
    *parents, leaf = dotted.split(".")
    node = data
    for key in parents:
        node = node.setdefault(key, {})
        if not isinstance(node, dict):
            raise ConfigError(f"override {dotted}: {key} is not a section")
    node[leaf] = yaml.safe_load(raw) if raw else ""


def load_config(path: str | Path, overrides: list[str] | None = None) -> TrainConfig:
    """Read a YAML config and apply `key=value` overrides (dotted keys for sections)."""
    path = Path(path)
    try:
        data = yaml.safe_load(path.read_text(encoding="utf-8")) or {}
    except FileNotFoundError:
        raise ConfigError(f"{path}: no such config file (see training/configs/)") from None
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        raise ConfigError(f"{path}:{mark.line + 1 if mark else 1}: not valid YAML") from None
    for item in overrides or []:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise ConfigError(f"override {item!r}: write it as key=value (e.g. max_steps=20)")
        _set(data, key.strip(), value.strip())
    try:
        return TrainConfig.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise ConfigError(f"{path}: {field}: {error['msg']}") from None
