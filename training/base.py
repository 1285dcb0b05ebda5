"""Base models for training: a local HF folder, a hub id, or a GGUF file.

A GGUF is loaded through transformers (dequantized to float32), the GGUF quantizer is dropped
so the model can be saved, and a plain HF copy is cached beside the file for fast reloads.
"""

import hashlib
from pathlib import Path
from typing import Any

from serving.errors import InvalidInput
from serving.lazy import require

CACHE = Path(".cache") / "base"


def _cache_dir(gguf: Path) -> Path:
    stat = gguf.stat()
    digest = hashlib.sha256(f"{gguf.resolve()}:{stat.st_size}:{stat.st_mtime_ns}".encode())
    return CACHE / f"{gguf.stem}-{digest.hexdigest()[:12]}"


def resolve_base(name: str) -> str:
    """A folder transformers can load: GGUF files are converted once and cached."""
    path = Path(name).expanduser()
    if path.suffix == ".gguf":
        if not path.is_file():
            raise InvalidInput(f"base model {path} does not exist: run `make models`")
        cached = _cache_dir(path)
        if not (cached / "config.json").is_file():
            _convert_gguf(path, cached)
        return str(cached)
    if path.exists() and not (path / "config.json").is_file():
        raise InvalidInput(f"{path} is not a Hugging Face model folder (no config.json)")
    return str(path) if path.exists() else name  # a hub id, loaded when online


def _convert_gguf(gguf: Path, target: Path) -> None:
    transformers = require("transformers", package="transformers", extra="training",
                           purpose="Training")
    torch = require("torch", package="torch", extra="training", purpose="Training")
    tokenizer = transformers.AutoTokenizer.from_pretrained(gguf.parent, gguf_file=gguf.name)
    model = transformers.AutoModelForCausalLM.from_pretrained(
        gguf.parent, gguf_file=gguf.name, dtype=torch.float32)
    model.hf_quantizer = None  # save_pretrained refuses a model still marked as GGUF-quantized
    if hasattr(model.config, "quantization_config"):
        del model.config.quantization_config
    tmp = target.with_name(target.name + ".tmp")
    model.save_pretrained(tmp)
    tokenizer.save_pretrained(tmp)
    tmp.rename(target)


def load_tokenizer(folder: str) -> Any:
    transformers = require("transformers", package="transformers", extra="training",
                           purpose="Training")
    return transformers.AutoTokenizer.from_pretrained(folder)
