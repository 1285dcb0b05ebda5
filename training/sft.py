"""Supervised fine-tuning of a LoRA adapter with TRL's SFTTrainer (optionally QLoRA)."""

import json
from pathlib import Path
from typing import Any

from serving.lazy import require
from serving.persona import load_personas
from serving.templates import get_template
from training.base import load_tokenizer, resolve_base
from training.config import TrainConfig
from training.examples import encode_all
from training.formats import ChatRecord, DataError, load
from training.history import LossLogger, plot_history


def _torch():
    return require("torch", package="torch", extra="training", purpose="Training")


def detect_template(folder: str, configured: str | None) -> str:
    if configured:
        return configured
    config = json.loads((Path(folder) / "config.json").read_text(encoding="utf-8"))
    model_type = config.get("model_type", "")
    for prefix, family in (("gemma", "gemma3"), ("llama", "llama3"), ("qwen", "chatml"),
                           ("mistral", "mistral")):
        if model_type.startswith(prefix):
            return family
    raise ValueError(f"cannot tell the chat template of a {model_type!r} model: set `template`")


def load_model(config: TrainConfig, folder: str) -> Any:
    """The base model, 4-bit quantized for QLoRA (float32 compute on CPU, bfloat16 on GPU)."""
    torch = _torch()
    transformers = require("transformers", package="transformers", extra="training",
                           purpose="Training")
    kwargs: dict[str, Any] = {"dtype": torch.float32}
    if config.quantization == "qlora":
        on_gpu = torch.cuda.is_available()
        kwargs["quantization_config"] = transformers.BitsAndBytesConfig(
            load_in_4bit=True, bnb_4bit_quant_type="nf4", bnb_4bit_use_double_quant=True,
            bnb_4bit_compute_dtype=torch.bfloat16 if on_gpu else torch.float32,
        )
    return transformers.AutoModelForCausalLM.from_pretrained(folder, **kwargs)


def lora_config(config: TrainConfig) -> Any:
    peft = require("peft", package="peft", extra="training", purpose="Training")
    return peft.LoraConfig(r=config.lora.r, lora_alpha=config.lora.alpha,
                           lora_dropout=config.lora.dropout,
                           target_modules=config.lora.target_modules, task_type="CAUSAL_LM")


def trainer_args(config: TrainConfig) -> dict[str, Any]:
    """Arguments shared by the SFT and DPO configs of TRL."""
    on_gpu = _torch().cuda.is_available()
    return {
        "output_dir": config.output_dir,
        "learning_rate": config.learning_rate,
        "num_train_epochs": config.epochs,
        "max_steps": config.max_steps,
        "per_device_train_batch_size": config.batch_size,
        "gradient_accumulation_steps": config.grad_accum,
        "warmup_steps": config.warmup_ratio,  # a float below 1 is a ratio of all steps
        "logging_steps": config.logging_steps,
        "save_steps": config.save_steps,
        "save_total_limit": 2,
        "seed": config.seed,
        "report_to": "none",
        "use_cpu": not on_gpu,
        "bf16": on_gpu and _torch().cuda.is_bf16_supported(),
        "fp16": False,
        "optim": "paged_adamw_8bit" if on_gpu and config.quantization == "qlora" else "adamw_torch",
        "gradient_checkpointing": config.quantization == "qlora",
        "max_length": config.max_length,
    }


def newest_checkpoint(output_dir: str) -> str | None:
    checkpoints = sorted(Path(output_dir).glob("checkpoint-*"),
                         key=lambda p: int(p.name.split("-")[-1]))
    return str(checkpoints[-1]) if checkpoints else None


def load_records(config: TrainConfig) -> list[ChatRecord]:
    """Every configured conversation; with system_prompt=short each persona card's system
    prompt is replaced by the card's one-line prompt (a system prompt that is no card's is an
    error naming file:line)."""
    shorten = {}
    if config.system_prompt == "short":
        directory = Path(config.personas_dir) if config.personas_dir else None
        shorten = {p.system_prompt.strip(): p.short_prompt()
                   for p in load_personas(directory).values()}
    records = []
    for path in config.data:
        dataset = load(path, expect="chat")
        for line, record in zip(dataset.lines, dataset.records, strict=True):
            first = record.messages[0]
            if shorten and first.role == "system":
                short = shorten.get(first.content.strip())
                if short is None:
                    raise DataError(
                        f"{path}:{line}: field 'messages[0].content': system_prompt=short needs "
                        f"the system prompt of a persona card, and this one is no card's; use "
                        f"system_prompt=card or set personas_dir to the cards the data was made with"
                    )
                record = record.model_copy(update={"messages": [
                    first.model_copy(update={"content": short}), *record.messages[1:]]})
            records.append(record)
    return records


def train_sft(config: TrainConfig) -> Path:
    """Train and save the adapter to output_dir/adapter; returns that folder."""
    trl = require("trl", package="trl", extra="training", purpose="Training")
    datasets = require("datasets", package="datasets", extra="training", purpose="Training")
    folder = resolve_base(config.base_model)
    tokenizer = load_tokenizer(folder)
    template = get_template(detect_template(folder, config.template))
    records = load_records(config)
    examples, dropped = encode_all(tokenizer, template, records, config.max_length)
    if not examples:
        raise ValueError("no example fits max_length: raise max_length or check the data")
    dataset = datasets.Dataset.from_list(examples)
    args = trl.SFTConfig(**trainer_args(config), dataset_kwargs={"skip_prepare_dataset": True},
                         remove_unused_columns=False)
    trainer = trl.SFTTrainer(
        model=load_model(config, folder), args=args, train_dataset=dataset,
        processing_class=tokenizer, peft_config=lora_config(config),
        data_collator=PadCollator(tokenizer.pad_token_id),
        callbacks=[LossLogger(Path(config.output_dir) / "history.csv")],
    )
    return run_and_save(trainer, tokenizer, config, folder, template.family, len(examples),
                        dropped)


def run_and_save(trainer: Any, tokenizer: Any, config: TrainConfig, folder: str, family: str,
                 examples: int, dropped: int) -> Path:
    """Train (resuming from the newest checkpoint), then save the adapter, run.json and the
    loss plot; returns the adapter folder. Shared by SFT and DPO."""
    resume = newest_checkpoint(config.output_dir) if config.resume else None
    result = trainer.train(resume_from_checkpoint=resume)
    adapter = Path(config.output_dir) / "adapter"
    if not trainer.is_world_process_zero():  # under `accelerate launch` one process writes
        return adapter
    # only the trained adapter: DPO keeps a frozen copy named "ref" beside it
    trainer.model.save_pretrained(adapter, selected_adapters=["default"])
    tokenizer.save_pretrained(adapter)
    _write_run_info(config, folder, family, examples, dropped,
                    steps=trainer.state.global_step,
                    train_seconds=round(result.metrics.get("train_runtime", 0.0), 1))
    plot_history(Path(config.output_dir) / "history.csv", Path(config.output_dir) / "loss.png")
    return adapter


class PadCollator:
    """Right-pads input_ids/labels to the longest example of the batch (batch 1: no padding)."""

    def __init__(self, pad_id: int | None):
        self.pad_id = pad_id if pad_id is not None else 0

    def __call__(self, batch: list[dict[str, list[int]]]) -> dict[str, Any]:
        torch = _torch()
        width = max(len(b["input_ids"]) for b in batch)
        ids = [b["input_ids"] + [self.pad_id] * (width - len(b["input_ids"])) for b in batch]
        labels = [b["labels"] + [-100] * (width - len(b["labels"])) for b in batch]
        mask = [[1] * len(b["input_ids"]) + [0] * (width - len(b["input_ids"])) for b in batch]
        return {"input_ids": torch.tensor(ids), "labels": torch.tensor(labels),
                "attention_mask": torch.tensor(mask)}


def _write_run_info(config: TrainConfig, folder: str, family: str, examples: int,
                    dropped: int, **extra: Any) -> None:
    info = {"config": config.model_dump(), "base_folder": folder, "template": family,
            "examples": examples, "dropped_too_long": dropped, **extra}
    (Path(config.output_dir) / "run.json").write_text(
        json.dumps(info, ensure_ascii=False, indent=2), encoding="utf-8")
