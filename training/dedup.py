"""Drop near-duplicate prompts and split a dataset into train/held-out by prompt.

A record's prompt key is its first user message (chat), instruction plus input (alpaca; the
text a chat conversion would put in the user turn, so "summarize this:" over different inputs
is not a duplicate), prompt (completion, preference) or instruction (seed).
"""

from pathlib import Path
from typing import Any

from serving.errors import InvalidInput
from training.convert import dump, write
from training.formats import Dataset, load
from training.quality import near_duplicates, split_heldout


def prompt_key(record: Any, fmt: str) -> str:
    if fmt == "chat":
        return next(t.content for t in record.messages if t.role == "user")
    if fmt == "alpaca":
        return f"{record.instruction}\n\n{record.input}" if record.input else record.instruction
    if fmt in ("completion", "preference"):
        return record.prompt
    if fmt == "seed":
        return record.instruction
    raise InvalidInput(f"{fmt} files have no prompt to compare; use chat, alpaca, completion, "
                       f"preference or seed")


def _keys(dataset: Dataset) -> list[str]:
    return [prompt_key(r, dataset.format) for r in dataset.records]


def dedup(src: Path, out: Path, threshold: float = 0.7) -> tuple[int, int]:
    """Write `src` without records whose prompt is a near-duplicate (character ROUGE-L >=
    threshold) of an earlier kept one; returns (kept, dropped)."""
    if not 0 < threshold <= 1:
        raise InvalidInput(f"threshold must be in (0, 1], got {threshold}")
    dataset = load(src)
    dropped: set[int] = set()
    for i, j, _ in sorted(near_duplicates(_keys(dataset), threshold)):
        if i not in dropped:
            dropped.add(j)
    kept = [dump(r) for n, r in enumerate(dataset.records) if n not in dropped]
    write(kept, out, dataset.format)
    return len(kept), len(dropped)


def split_paths(src: Path) -> tuple[Path, Path]:
    src = Path(src)
    return src.with_name(f"{src.stem}.train.jsonl"), src.with_name(f"{src.stem}.heldout.jsonl")


def split(src: Path, percent: int = 10) -> tuple[Path, int, Path, int]:
    """Write STEM.train.jsonl and STEM.heldout.jsonl beside `src` (quality.split_heldout on
    the prompt key); returns (train path, count, held-out path, count)."""
    if not 0 <= percent <= 100:
        raise InvalidInput(f"--heldout-percent must be between 0 and 100, got {percent}")
    dataset = load(src)
    pairs = list(zip(_keys(dataset), dataset.records, strict=True))
    train, heldout = split_heldout(pairs, key=lambda pair: pair[0], percent=percent)
    train_path, heldout_path = split_paths(src)
    write([dump(r) for _, r in train], train_path, dataset.format)
    write([dump(r) for _, r in heldout], heldout_path, dataset.format)
    return train_path, len(train), heldout_path, len(heldout)
