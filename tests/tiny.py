"""A tiny Llama with a SentencePiece tokenizer trained on our corpus, for fast pipeline tests.

The tokenizer is a SentencePiece BPE model (byte fallback, Gemma-style turn markers) because
llama.cpp reads its scores and so tokenizes exactly as transformers does; a `tokenizers`-trained
vocabulary does not give token-id parity (PLATFORM.md).
"""

import io
import json
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CRITICS = ROOT / "training" / "data" / "critics"
SPECIALS = {"pad_token": "<pad>", "eos_token": "<eos>", "bos_token": "<bos>", "unk_token": "<unk>"}
TURN_MARKERS = ["<start_of_turn>", "<end_of_turn>"]  # the gemma3 template's control tokens


def corpus_lines(per_file: int = 12) -> list[str]:
    """A few hundred Korean lines from the critics corpus, plus some English."""
    lines = []
    for path in sorted(CRITICS.glob("*.train.jsonl")):
        with path.open(encoding="utf-8") as handle:
            for _, row in zip(range(per_file), handle, strict=False):
                for message in json.loads(row)["messages"]:
                    lines += [x for x in message["content"].split("\n") if x.strip()]
    lines += ["The quick brown fox jumps over the lazy dog.",
              "Hello, how are you today? I am fine, thank you.",
              "Should I quit my job and start a company next year?"] * 20
    return lines


def train_sentencepiece(folder: Path, vocab_size: int = 1000) -> Path:
    """folder/tokenizer.model: ids 0-3 are <pad>, <eos>, <bos>, <unk> as in Gemma."""
    import sentencepiece as spm

    buffer = io.BytesIO()
    spm.SentencePieceTrainer.train(
        sentence_iterator=iter(corpus_lines()), model_writer=buffer, vocab_size=vocab_size,
        model_type="bpe", byte_fallback=True, character_coverage=0.98,
        pad_id=0, eos_id=1, bos_id=2, unk_id=3, pad_piece="<pad>", eos_piece="<eos>",
        bos_piece="<bos>", unk_piece="<unk>", control_symbols=TURN_MARKERS,
        minloglevel=2,
    )
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / "tokenizer.model"
    path.write_bytes(buffer.getvalue())
    return path


def build_tiny_llama(folder: Path, seed: int = 0) -> Path:
    """A random 2-layer Llama (hidden 64) with its tokenizer, saved as a HF folder."""
    import torch
    from transformers import LlamaConfig, LlamaForCausalLM, LlamaTokenizer

    train_sentencepiece(folder)
    # transformers 5 converts tokenizer.model only through from_pretrained on the folder
    tokenizer = LlamaTokenizer.from_pretrained(folder, **SPECIALS)
    tokenizer.add_special_tokens({"additional_special_tokens": TURN_MARKERS})  # already in vocab
    tokenizer.save_pretrained(folder)  # tokenizer.json: later loads skip the slow conversion
    torch.manual_seed(seed)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=64, intermediate_size=128, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        pad_token_id=0, eos_token_id=1, bos_token_id=2, tie_word_embeddings=False,
    )
    model = LlamaForCausalLM(config)
    with torch.no_grad():  # a bigger output scale, so logits are not all near zero
        model.lm_head.weight.normal_(0, 0.25)
    model.save_pretrained(folder)
    return folder


def train_tiny_run(root: Path, steps: int = 2) -> Path:
    """root/base (the tiny model) and root/run: a real `train_sft` run of a few LoRA steps
    with a high learning rate, so the adapter moves the model (gemma3 template)."""
    from training.config import TrainConfig
    from training.sft import train_sft

    base = build_tiny_llama(root / "base")
    data = root / "chats.jsonl"
    with (CRITICS / "team-lead.train.jsonl").open(encoding="utf-8") as handle:
        rows = [json.loads(line) for _, line in zip(range(8), handle, strict=False)]
    data.write_text("".join(
        json.dumps({"messages": [m for m in r["messages"] if m["role"] != "system"][:2]},
                   ensure_ascii=False) + "\n" for r in rows), encoding="utf-8")
    config = TrainConfig(
        base_model=str(base), template="gemma3", data=[str(data)], output_dir=str(root / "run"),
        max_steps=steps, grad_accum=1, max_length=256, learning_rate=1e-2, warmup_ratio=0,
        lora={"r": 4, "alpha": 8, "dropout": 0.0}, logging_steps=1, save_steps=10_000,
    )
    train_sft(config)
    return root / "run"
