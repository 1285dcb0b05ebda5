"""Dataset formats Polaris reads and writes, validated record by record.

chat            {"messages": [{"role", "content"}, ...]}  (+ optional "id", "topic")
alpaca          {"instruction", "input", "output"}          (JSON array or JSONL)
completion      {"prompt", "completion"}
preference      {"prompt", "chosen", "rejected"}
seed            {"id", "name", "instruction", "instances": [{"input", "output"}], "is_classification"}
csv             columns C_ID, role, content (one conversation per C_ID)
debate          the judge set: a transcript with per-critic persuasion labels

Every problem is reported as `file:line: field 'x': what is wrong`.
"""

import csv
import io
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from serving.errors import InvalidInput

MIN_ADVISED = 200  # fewer examples than this rarely teaches a style (see README)
Text = Field(min_length=1)


class DataError(InvalidInput):
    """A dataset file is malformed; the message names file:line and the field."""


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", str_strip_whitespace=False)


class Turn(_Strict):
    role: Literal["system", "user", "assistant"]
    content: str = Text

    @field_validator("content")
    @classmethod
    def _not_blank(cls, value: str) -> str:
        if not value.strip():
            raise ValueError("must not be blank")
        return value


class ChatRecord(_Strict):
    id: str | None = None
    topic: str | None = None
    messages: list[Turn] = Field(min_length=2)

    @model_validator(mode="after")
    def _turn_order(self) -> "ChatRecord":
        turns = self.messages[1:] if self.messages[0].role == "system" else self.messages
        for i, turn in enumerate(turns):
            expected = "user" if i % 2 == 0 else "assistant"
            if turn.role != expected:
                offset = len(self.messages) - len(turns)
                raise ValueError(
                    f"messages[{i + offset}] is {turn.role!r} but {expected!r} was expected: "
                    f"after an optional system message, turns alternate user/assistant"
                )
        if not turns or turns[-1].role != "assistant":
            raise ValueError("a conversation must end with an assistant turn to train on")
        return self


class AlpacaRecord(_Strict):
    instruction: str = Text
    input: str = ""
    output: str = Text


class CompletionRecord(_Strict):
    prompt: str = Text
    completion: str = Text


class PreferenceRecord(_Strict):
    prompt: str = Text
    chosen: str = Text
    rejected: str = Text

    @model_validator(mode="after")
    def _different(self) -> "PreferenceRecord":
        if self.chosen.strip() == self.rejected.strip():
            raise ValueError("chosen and rejected are the same text")
        return self


class Instance(_Strict):
    input: str = ""
    output: str = Text


class SeedTask(_Strict):
    id: str = Text
    name: str = Text
    instruction: str = Text
    instances: list[Instance] = Field(min_length=1)
    is_classification: bool


class Objection(_Strict):
    category: Literal["money", "experience", "skills", "timing", "family", "market", "health",
                      "plan", "stability", "other"]
    text: str = Text
    state: Literal["open", "addressed", "conceded"]


class CriticLabel(_Strict):
    score: int = Field(ge=0, le=100)
    objections: list[Objection] = Field(min_length=1)


class Goal(_Strict):
    title: str = Text
    description: str = ""
    constraints: str = ""
    evidence: str = ""


class DebateTurn(_Strict):
    role: Literal["user", "assistant"]
    persona: str | None = None
    content: str = Text


class Debate(_Strict):
    id: str = Text
    goal: Goal
    critics: list[str] = Field(min_length=1, max_length=4)
    turns: list[DebateTurn] = Field(min_length=2)
    labels: dict[str, CriticLabel]
    quality: Literal["weak", "mixed", "strong"]
    rationale: str = Text

    @model_validator(mode="after")
    def _consistent(self) -> "Debate":
        if self.turns[0].role != "user":
            raise ValueError("turns must start with the user")
        for i, turn in enumerate(self.turns):
            if turn.role == "assistant" and turn.persona not in self.critics:
                raise ValueError(f"turns[{i}].persona {turn.persona!r} is not one of the critics")
        if set(self.labels) != set(self.critics):
            raise ValueError("labels must have exactly one entry per critic")
        return self


FORMATS: dict[str, type[BaseModel]] = {
    "chat": ChatRecord,
    "alpaca": AlpacaRecord,
    "completion": CompletionRecord,
    "preference": PreferenceRecord,
    "seed": SeedTask,
    "debate": Debate,
}
_SIGNATURES = (  # the key that tells a format apart, most specific first
    ("debate", {"turns", "labels"}),
    ("seed", {"instances"}),
    ("preference", {"chosen", "rejected"}),
    ("chat", {"messages"}),
    ("alpaca", {"instruction", "output"}),
    ("completion", {"prompt", "completion"}),
)


def detect_format(record: dict[str, Any]) -> str | None:
    for name, keys in _SIGNATURES:
        if keys <= record.keys():
            return name
    return None


@dataclass
class Dataset:
    path: Path
    format: str
    records: list[BaseModel] = field(default_factory=list)
    lines: list[int] = field(default_factory=list)

    def __len__(self) -> int:
        return len(self.records)


def read_raw(path: Path) -> Iterator[tuple[int, dict[str, Any]]]:
    """(line number, record) from JSONL, a JSON array, or CSV (grouped by C_ID)."""
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError:
        raise DataError(f"{path}: no such file") from None
    except UnicodeDecodeError as exc:
        raise DataError(f"{path}: not UTF-8 text ({exc.reason} at byte {exc.start})") from None
    if path.suffix.lower() == ".csv":
        yield from _read_csv(path, text)
    elif text.lstrip().startswith("["):
        yield from _read_json_array(path, text)
    else:
        yield from _read_jsonl(path, text)


def _read_jsonl(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    for number, line in enumerate(text.splitlines(), start=1):
        if not line.strip():
            continue
        try:
            record = json.loads(line)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{number}: not valid JSON ({exc.msg}, column {exc.colno})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{number}: each line must be a JSON object")
        yield number, record


def _read_json_array(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    decoder = json.JSONDecoder()
    index = text.index("[") + 1
    while True:
        while index < len(text) and text[index] in " \t\r\n,":
            index += 1
        if index >= len(text):
            raise DataError(f"{path}:{text.count(chr(10)) + 1}: the JSON array is not closed")
        if text[index] == "]":
            return
        line = text.count("\n", 0, index) + 1
        try:
            record, index = decoder.raw_decode(text, index)
        except json.JSONDecodeError as exc:
            raise DataError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
        if not isinstance(record, dict):
            raise DataError(f"{path}:{line}: each array item must be a JSON object")
        yield line, record


def _read_csv(path: Path, text: str) -> Iterator[tuple[int, dict[str, Any]]]:
    reader = csv.DictReader(io.StringIO(text, newline=""))  # keeps quoted line breaks
    missing = {"C_ID", "role", "content"} - set(reader.fieldnames or [])
    if missing:
        raise DataError(f"{path}:1: CSV header lacks {', '.join(sorted(missing))} "
                        f"(expected columns C_ID, role, content)")
    conversations: dict[str, tuple[int, list[dict[str, str]]]] = {}
    for row in reader:
        if not (row.get("C_ID") or "").strip():
            raise DataError(f"{path}:{reader.line_num}: field 'C_ID': must not be empty")
        first_line, turns = conversations.setdefault(row["C_ID"], (reader.line_num, []))
        turns.append({"role": row["role"], "content": row["content"]})
    for first_line, turns in conversations.values():
        yield first_line, {"messages": turns}


def load(path: str | Path, expect: str | None = None) -> Dataset:
    """Read and validate every record; the first problem raises DataError with file:line."""
    path = Path(path)
    dataset: Dataset | None = None
    for number, raw in read_raw(path):
        name = expect or detect_format(raw)
        if name is None:
            raise DataError(
                f"{path}:{number}: cannot tell the format from keys {sorted(raw)}: expected one "
                f"of chat (messages), alpaca (instruction/output), completion (prompt/completion), "
                f"preference (prompt/chosen/rejected), seed (instances), debate (turns/labels)"
            )
        if dataset is None:
            dataset = Dataset(path, name)
        elif name != dataset.format:
            raise DataError(f"{path}:{number}: a {name} record in a {dataset.format} file")
        try:
            dataset.records.append(FORMATS[name].model_validate(raw))
        except ValidationError as exc:
            raise DataError(f"{path}:{number}: {_describe(exc)}") from None
        dataset.lines.append(number)
    if dataset is None:
        raise DataError(f"{path}: no records")
    return dataset


def _describe(exc: ValidationError) -> str:
    error = exc.errors()[0]
    where = "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in error["loc"]).lstrip(".")
    message = error["msg"].removeprefix("Value error, ")
    return f"field '{where}': {message}" if where else message
