"""Convert datasets between chat, alpaca, completion and CSV (and preference/seed to chat).

Every conversion goes through chat, with these mappings:

alpaca -> chat       user = instruction, plus a blank line and `input` when there is one;
                     assistant = output.
completion -> chat   user = prompt; assistant = completion.
preference -> chat   user = prompt; assistant = chosen (rejected is dropped).
seed -> chat         one conversation per instance, built like alpaca; id `TASKID-k`, topic = name.
chat -> alpaca       the last exchange is kept: instruction = last user turn, output = last
                     assistant turn; the system prompt and earlier turns are folded into
                     `input`, one `role: text` per turn. Lossless only for one user/assistant pair
                     without a system prompt.
chat -> completion   prompt = the folded context (as above), a blank line, then the last user
                     turn; completion = the last assistant turn.
chat <-> csv         one row per turn; C_ID = the record's 1-based position (ids and topics
                     are not kept).

Converting a format to itself only rewrites the file (e.g. alpaca JSONL <-> JSON array).
OUT's suffix picks the container: `.csv` CSV (chat records only; `--to csv` needs it), `.json`
a JSON array, any other JSONL. The whole input is validated before anything is written; the write is atomic.
"""

import csv
import io
import json
from pathlib import Path
from typing import Any

from pydantic import BaseModel

from serving.errors import InvalidInput
from serving.files import atomic_write_text
from training.formats import ChatRecord, Dataset, load

TARGETS = ("chat", "alpaca", "completion", "csv")
TO_CHAT_ONLY = ("preference", "seed")


def convert(src: Path, out: Path, to: str) -> int:
    """Convert `src` into `out` as format `to`; returns the number of records written."""
    if to not in TARGETS:
        raise InvalidInput(f"unknown format {to!r}: use one of {', '.join(TARGETS)}")
    if (to == "csv") != (Path(out).suffix.lower() == ".csv"):
        raise InvalidInput(f"{out}: CSV output needs a .csv file name, and only CSV may use one")
    fmt = "chat" if to == "csv" else to
    dataset = load(src)
    records = convert_records(dataset, fmt)
    write(records, out, fmt)
    return len(records)


def convert_records(dataset: Dataset, to: str) -> list[dict[str, Any]]:
    """The dataset's records as plain dicts of format `to`."""
    if dataset.format == to:
        return [dump(r) for r in dataset.records]
    if dataset.format == "debate" or (dataset.format in TO_CHAT_ONLY and to != "chat"):
        raise InvalidInput(f"{dataset.path}: cannot convert {dataset.format} to {to}: "
                           f"preference and seed files convert to chat only")
    chats = [c for r in dataset.records for c in to_chat(r, dataset.format)]
    return chats if to == "chat" else [from_chat(ChatRecord.model_validate(c), to) for c in chats]


def dump(record: BaseModel) -> dict[str, Any]:
    return record.model_dump(exclude_none=True)


def _user_text(instruction: str, extra: str) -> str:
    return f"{instruction}\n\n{extra}" if extra else instruction


def _pair(user: str, assistant: str, **extra: str) -> dict[str, Any]:
    return {**extra, "messages": [{"role": "user", "content": user},
                                  {"role": "assistant", "content": assistant}]}


def to_chat(record: Any, fmt: str) -> list[dict[str, Any]]:
    """One record of `fmt` as chat records (a seed task gives one per instance)."""
    if fmt == "chat":
        return [dump(record)]
    if fmt == "alpaca":
        return [_pair(_user_text(record.instruction, record.input), record.output)]
    if fmt == "completion":
        return [_pair(record.prompt, record.completion)]
    if fmt == "preference":
        return [_pair(record.prompt, record.chosen)]
    if fmt == "seed":
        return [_pair(_user_text(record.instruction, inst.input), inst.output,
                      id=f"{record.id}-{k}", topic=record.name)
                for k, inst in enumerate(record.instances, start=1)]
    raise InvalidInput(f"cannot convert {fmt} records to chat")


def from_chat(record: ChatRecord, to: str) -> dict[str, Any]:
    """A chat record as alpaca or completion (the last exchange; earlier turns folded)."""
    *before, user, assistant = record.messages
    context = "\n".join(f"{t.role}: {t.content}" for t in before)
    if to == "alpaca":
        return {"instruction": user.content, "input": context, "output": assistant.content}
    if to == "completion":
        return {"prompt": _user_text(context, user.content) if context else user.content,
                "completion": assistant.content}
    raise InvalidInput(f"cannot convert chat records to {to}")


def render(records: list[dict[str, Any]], out: Path) -> str:
    """The file text: CSV rows of chat turns for `.csv`, a JSON array for `.json`, else JSONL."""
    suffix = Path(out).suffix.lower()
    if suffix == ".csv":
        buffer = io.StringIO()
        writer = csv.writer(buffer, lineterminator="\n")
        writer.writerow(["C_ID", "role", "content"])
        for number, record in enumerate(records, start=1):
            for turn in record["messages"]:
                writer.writerow([number, turn["role"], turn["content"]])
        return buffer.getvalue()
    if suffix == ".json":
        return json.dumps(records, ensure_ascii=False, indent=2) + "\n"
    return "".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records)


def check_out(out: Path, fmt: str) -> None:
    """Refuse an OUT that cannot hold `fmt` (call before any slow work)."""
    if Path(out).suffix.lower() == ".csv" and fmt != "chat":
        raise InvalidInput(f"{out}: only chat records can be written as CSV; use .jsonl or .json")


def write(records: list[dict[str, Any]], out: Path, fmt: str) -> None:
    """Write `records` of format `fmt` to `out` atomically (container by suffix, see render)."""
    check_out(out, fmt)
    atomic_write_text(Path(out), render(records, out))
