"""Our SFT recipe vs plain TRL defaults on the same conversations, same model, same run.

Three trainings of a LoRA (r=32, all projections) on Gemma 3 270M over the same N critic
conversations, one pass each:

  trl-defaults   SFTTrainer on {"messages"} rows with the tokenizer's chat template and TRL's
                 defaults otherwise (batch 8 padded to the longest row, loss on every token)
  ours-card      our pre-tokenized examples: assistant-only labels, batch 1 x grad-acc 4
                 (no padding), the cards' full system prompts as in the data
  ours-short     the shipped recipe: the same, with each card's one-line prompt (cpu-demo.yaml)

Prints wall time per conversation, trained (labelled) tokens/s and all tokens/s, with ratios
against trl-defaults. Usage:
  .venv/bin/python bench/bench_sft.py [--conversations 16] [--base models/gemma-3-270m-q4_k_m.gguf]
"""

import argparse
import tempfile
import time
from pathlib import Path

import datasets
import torch
import trl

from serving.templates import get_template
from training.base import load_tokenizer, resolve_base
from training.config import load_config
from training.examples import IGNORE, encode_all
from training.export import JINJA
from training.sft import PadCollator, load_model, load_records, lora_config, trainer_args

RECIPE = Path("training/configs/cpu-demo.yaml")


def records(prompt: str, n: int, base: str) -> list:
    config = load_config(RECIPE, [f"system_prompt={prompt}", f"base_model={base}"])
    every = load_records(config)
    step = max(1, len(every) // n)  # spread over all five critics
    return every[::step][:n]


def ours(prompt: str, n: int, base: str, out: Path) -> dict:
    config = load_config(RECIPE, [
        f"system_prompt={prompt}", f"base_model={base}", f"output_dir={out}",
        f"max_steps={n // 4}", "save_steps=100000", "logging_steps=1", "max_length=1024"])
    folder = resolve_base(config.base_model)
    tokenizer = load_tokenizer(folder)
    examples, _ = encode_all(tokenizer, get_template("gemma3"), records(prompt, n, base), 1024)
    trainer = trl.SFTTrainer(
        model=load_model(config, folder),
        args=trl.SFTConfig(**trainer_args(config), dataset_kwargs={"skip_prepare_dataset": True},
                           remove_unused_columns=False, disable_tqdm=True),
        train_dataset=datasets.Dataset.from_list(examples), processing_class=tokenizer,
        peft_config=lora_config(config), data_collator=PadCollator(tokenizer.pad_token_id))
    seconds = _train(trainer)
    return {"seconds": seconds, "tokens": sum(len(e["input_ids"]) for e in examples),
            "labelled": sum(sum(t != IGNORE for t in e["labels"]) for e in examples)}


def trl_defaults(n: int, base: str, out: Path) -> dict:
    """What a user gets from the TRL quick start: messages in, defaults for everything else
    (LoRA and the CPU flags set as in ours, so only the data path differs)."""
    config = load_config(RECIPE, [f"base_model={base}", f"output_dir={out}"])
    folder = resolve_base(config.base_model)
    tokenizer = load_tokenizer(folder)
    tokenizer.chat_template = JINJA["gemma3"]  # the base GGUF carries none
    rows = [{"messages": [{"role": m.role, "content": m.content} for m in r.messages]}
            for r in records("card", n, base)]
    args = trl.SFTConfig(output_dir=str(out), max_steps=-(-n // 8), save_strategy="no",
                         report_to="none", use_cpu=True, bf16=False, learning_rate=2e-4,
                         logging_steps=1, disable_tqdm=True)
    trainer = trl.SFTTrainer(model=load_model(config, folder), args=args,
                             train_dataset=datasets.Dataset.from_list(rows),
                             processing_class=tokenizer, peft_config=lora_config(config))
    encoded = trainer.train_dataset
    tokens = sum(len(ids) for ids in encoded["input_ids"])
    padded = 0
    for start in range(0, n, 8):
        batch = [len(ids) for ids in encoded["input_ids"][start:start + 8]]
        padded += max(batch) * len(batch)
    seconds = _train(trainer)
    return {"seconds": seconds, "tokens": tokens, "labelled": tokens, "padded": padded}


def _train(trainer) -> float:
    started = time.perf_counter()
    trainer.train()
    return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--conversations", type=int, default=16, help="a multiple of 8")
    parser.add_argument("--base", default="models/gemma-3-270m-q4_k_m.gguf")
    args = parser.parse_args()
    n = max(8, args.conversations // 8 * 8)
    torch.manual_seed(0)
    results = {}
    with tempfile.TemporaryDirectory() as tmp:
        results["trl-defaults"] = trl_defaults(n, args.base, Path(tmp) / "trl")
        results["ours-card"] = ours("card", n, args.base, Path(tmp) / "card")
        results["ours-short"] = ours("short", n, args.base, Path(tmp) / "short")
    base = results["trl-defaults"]
    print(f"\nSFT on {n} critic conversations, Gemma 3 270M, LoRA r=32, torch "
          f"{torch.__version__}, {torch.get_num_threads()} threads\n")
    print("| recipe | s / conversation | tokens (all) | labelled | all tok/s | labelled tok/s "
          "| speed-up (time) |")
    print("|---|---|---|---|---|---|---|")
    for name, r in results.items():
        per = r["seconds"] / n
        print(f"| {name} | {per:.2f} | {r['tokens']} | {r['labelled']} | "
              f"{r['tokens'] / r['seconds']:.0f} | {r['labelled'] / r['seconds']:.0f} | "
              f"{base['seconds'] / r['seconds']:.2f}x |")
    print(f"\ntrl-defaults pads batches of 8 to {base['padded']} positions for "
          f"{base['tokens']} tokens ({base['padded'] / base['tokens'] - 1:.0%} padding) and "
          f"trains on every token, the prompt included.")


if __name__ == "__main__":
    main()
