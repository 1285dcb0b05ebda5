"""Direct preference optimisation of a LoRA adapter with TRL's DPOTrainer.

Pairs are tokenized here, exactly as the embedded backend builds its prompts (our templates,
markup as control tokens, one BOS), and handed to TRL already tokenized: TRL's own text path
would add the tokenizer's BOS again, append `eos` instead of the template's end-of-turn token,
and parse special tokens inside user text.
"""

import json
from pathlib import Path
from typing import Any

from serving.errors import InvalidInput
from serving.lazy import require
from serving.persona import load_personas
from serving.templates import ChatTemplate, get_template
from serving.types import Message
from training.base import load_tokenizer, resolve_base
from training.config import ConfigError, TrainConfig
from training.examples import segment_ids
from training.formats import PreferenceRecord, load
from training.history import LossLogger
from training.sft import detect_template, load_model, lora_config, run_and_save, trainer_args


def system_prompts(config: TrainConfig) -> dict[str, str]:
    """Persona id -> the system prompt to train with (the configured cards, else the shipped
    critics): the card's full prompt, or its one-line prompt when system_prompt is short."""
    directory = Path(config.personas_dir) if config.personas_dir else None
    return {pid: p.short_prompt() if config.system_prompt == "short" else p.system_prompt
            for pid, p in load_personas(directory).items()}


def encode_pair(tokenizer: Any, template: ChatTemplate, system: str | None,
                record: PreferenceRecord) -> dict[str, list[int]]:
    """prompt_ids (ending with the assistant's turn header), chosen_ids and rejected_ids
    (the reply followed by the template's end-of-turn token)."""
    messages = [Message(role="system", content=system)] if system else []
    messages.append(Message(role="user", content=record.prompt))
    prompt = template.render(messages, add_generation_prompt=True)
    out = {"prompt_ids": [t for s in prompt for t in segment_ids(tokenizer, s)]}
    for key in ("chosen", "rejected"):
        reply = Message(role="assistant", content=getattr(record, key))
        full = template.render([*messages, reply], add_generation_prompt=False)
        if full[:len(prompt)] != prompt:
            raise ValueError(f"the {template.family} template renders a prompt that is not a "
                             f"prefix of the full conversation; DPO cannot split it")
        ids: list[int] = []
        for segment in full[len(prompt):]:
            ids += segment_ids(tokenizer, segment)
            if segment.special and segment.text == template.turn_end:
                break
        out[f"{key}_ids"] = ids
    return out


def encode_preferences(tokenizer: Any, template: ChatTemplate, config: TrainConfig
                       ) -> tuple[list[dict[str, list[int]]], int]:
    """Every pair of the configured files, and how many were dropped because the prompt
    alone fills max_length (TRL truncates the rest of a long pair at max_length)."""
    prompts = system_prompts(config)
    pairs, dropped = [], 0
    for path in config.data:
        system = prompts.get(Path(path).stem)
        for record in load(path, expect="preference").records:
            pair = encode_pair(tokenizer, template, system, record)
            if len(pair["prompt_ids"]) >= config.max_length:
                dropped += 1
            else:
                pairs.append(pair)
    return pairs, dropped


def adapter_folder(init: str) -> Path:
    """An SFT run dir (its adapter/) or an adapter folder itself."""
    path = Path(init)
    for candidate in (path / "adapter", path):
        if (candidate / "adapter_config.json").is_file():
            return candidate
    raise ConfigError(f"init_adapter: {init} has no adapter (adapter_config.json): "
                      f"give an SFT run dir or its adapter/ folder")


def _check_same_base(init: str, folder: str) -> None:
    run = Path(init) / "run.json"
    if not run.is_file():
        return
    trained_on = json.loads(run.read_text(encoding="utf-8")).get("base_folder")
    if trained_on and Path(trained_on).resolve() != Path(folder).resolve():
        raise ConfigError(f"init_adapter was trained on {trained_on}, but base_model is {folder}")


def load_policy(config: TrainConfig, folder: str) -> tuple[Any, Any]:
    """(model, peft_config): the base with a new LoRA, or the SFT adapter to keep training.
    From an adapter, TRL itself adds a frozen copy named "ref" as the DPO reference."""
    model = load_model(config, folder)
    if not config.init_adapter:
        return model, lora_config(config)
    _check_same_base(config.init_adapter, folder)
    peft = require("peft", package="peft", extra="training", purpose="Training")
    adapter = adapter_folder(config.init_adapter)
    return peft.PeftModel.from_pretrained(model, str(adapter), is_trainable=True), None


def _trainer_class(trl: Any) -> type:
    class PretokenizedDPOTrainer(trl.DPOTrainer):
        """Takes prompt_ids/chosen_ids/rejected_ids as they are (TRL 1.16 always
        re-tokenizes text pairs; this private hook is the one place it does so)."""

        def _prepare_dataset(self, dataset, *args, **kwargs):
            return dataset

    return PretokenizedDPOTrainer


def build_trainer(config: TrainConfig) -> tuple[Any, Any, str, str, int, int]:
    """(trainer, tokenizer, base folder, template family, pairs used, pairs dropped)."""
    trl = require("trl", package="trl", extra="training", purpose="Training")
    datasets = require("datasets", package="datasets", extra="training", purpose="Training")
    folder = resolve_base(config.base_model)
    tokenizer = load_tokenizer(folder)
    template = get_template(detect_template(folder, config.template))
    pairs, dropped = encode_preferences(tokenizer, template, config)
    if not pairs:
        raise InvalidInput("no preference pair fits max_length: raise max_length or check data")
    model, peft_config = load_policy(config, folder)
    args = trl.DPOConfig(**trainer_args(config), beta=config.beta)
    trainer = _trainer_class(trl)(
        model=model, args=args, train_dataset=datasets.Dataset.from_list(pairs),
        processing_class=tokenizer, peft_config=peft_config,
        callbacks=[LossLogger(Path(config.output_dir) / "history.csv")],
    )
    return trainer, tokenizer, folder, template.family, len(pairs), dropped


def train_dpo(config: TrainConfig) -> Path:
    """Train and save the adapter to output_dir/adapter; returns that folder."""
    trainer, tokenizer, folder, family, used, dropped = build_trainer(config)
    return run_and_save(trainer, tokenizer, config, folder, family, used, dropped)
