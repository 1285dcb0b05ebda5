"""Rewrite the answers of an instruction dataset in a persona's voice through a teacher model.

Two steps, as in the original study: (a) the teacher names the persona's speech traits once
(a JSON list, cached in OUT.traits.json); (b) answers are sent in batches as a JSON array of
{"id", "text"} and must come back as the same array with the text restyled. A bad answer is
retried (3 tries), then the batch is split in halves; a single text that still fails makes its
record skipped and written, unchanged, to OUT.failed.jsonl (a dataset you can restyle again).

Each finished batch is appended to OUT.partial.jsonl, so an interrupted run resumes where it
stopped when re-run with the same IN, OUT and persona. OUT is written atomically at the end.
Ids are positions: "7" is record 7's answer (alpaca, completion), "7-2" message 2 of chat
record 7 (every assistant turn is restyled).
"""

import json
import os
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any

from tqdm import tqdm

from serving.backend import ChatBackend
from serving.errors import BackendError, BackendUnavailable, InvalidInput, ModelNotFound
from serving.files import atomic_write_text
from serving.persona import Persona
from serving.types import GenerationOptions, Message
from training.convert import check_out, dump, write
from training.formats import Dataset, load

ATTEMPTS = 3
OPTIONS = GenerationOptions(max_tokens=4096, temperature=0.7)
Item = tuple[str, str]  # (id, text)


class BadAnswer(ValueError):
    """The teacher's answer is not what was asked for (retried)."""


def sidecar(out: Path, suffix: str) -> Path:
    return Path(out).with_name(Path(out).name + suffix)


def parse_json(text: str) -> Any:
    """The answer as JSON: the whole text must be one JSON value (a ``` fence around it is ok)."""
    text = text.strip()
    if text.startswith("```") and text.endswith("```"):
        text = text[3:-3].removeprefix("json").strip()
    try:
        return json.loads(text)
    except json.JSONDecodeError as exc:
        raise BadAnswer(f"not JSON ({exc.msg} at line {exc.lineno}): {text[:80]!r}") from None


def ask(teacher: ChatBackend, messages: list[Message]) -> str:
    """One teacher call; a passing backend failure counts as a bad answer (retried)."""
    try:
        return teacher.complete(messages, OPTIONS).text
    except (BackendUnavailable, ModelNotFound):
        raise
    except BackendError as exc:
        raise BadAnswer(f"the teacher failed: {exc}") from None


def _examples(persona: Persona, k: int) -> str:
    return "\n".join(f"- {e.assistant}" for e in persona.examples[:k])


def traits_messages(persona: Persona) -> list[Message]:
    return [
        {"role": "system", "content": "당신은 한국어 말투를 분석하는 언어학자입니다."},
        {"role": "user", "content": (
            f"다음 인물의 말투에서 드러나는 특징적인 단어, 어미, 표현을 찾아 주세요.\n\n"
            f"이름: {persona.name}\n역할: {persona.role}\n말투: {persona.speech}\n"
            f"설정:\n{persona.system_prompt}\n\n실제로 한 말:\n{_examples(persona, 10)}\n\n"
            f'답은 문자열로 된 JSON 배열 하나만 쓰세요. 예: ["솔직히 말해서", "~거든"]'
        )},
    ]


def speech_traits(teacher: ChatBackend, persona: Persona) -> list[str]:
    """Ask the teacher for the persona's speech traits (a non-empty JSON list of strings)."""
    problem = ""
    for _ in range(ATTEMPTS):
        try:
            traits = parse_json(ask(teacher, traits_messages(persona)))
            if (isinstance(traits, list) and traits
                    and all(isinstance(t, str) and t.strip() for t in traits)):
                return [t.strip() for t in traits]
            problem = f"not a non-empty JSON list of strings: {str(traits)[:80]!r}"
        except BadAnswer as exc:
            problem = str(exc)
    raise BackendError(f"the teacher gave no speech traits in {ATTEMPTS} tries ({problem}); "
                       f"try a stronger --teacher-model")


def cached_traits(teacher: ChatBackend, persona: Persona, out: Path) -> list[str]:
    """Traits from OUT.traits.json when made for this persona, else asked for and cached."""
    path = sidecar(out, ".traits.json")
    if path.exists():
        cached = json.loads(path.read_text(encoding="utf-8"))
        if cached.get("persona") == persona.id:
            return cached["traits"]
        if sidecar(out, ".partial.jsonl").exists():
            raise InvalidInput(f"{sidecar(out, '.partial.jsonl')} holds progress for persona "
                               f"{cached.get('persona')!r}: use that persona or delete the file")
    traits = speech_traits(teacher, persona)
    atomic_write_text(path, json.dumps({"persona": persona.id, "traits": traits},
                                       ensure_ascii=False, indent=2) + "\n")
    return traits


def batch_messages(persona: Persona, traits: list[str], batch: list[Item]) -> list[Message]:
    tone = {"에겐": "부드럽고 공감하는", "테토": "단호하고 직설적인"}.get(persona.tone, "차분한")
    payload = json.dumps([{"id": i, "text": t} for i, t in batch], ensure_ascii=False)
    return [
        {"role": "system", "content": (
            f"당신은 글의 내용은 그대로 두고 말투만 바꾸는 한국어 편집자입니다.\n"
            f"바꿀 말투의 주인공: {persona.name} ({persona.role})\n"
            f"{persona.speech}로, {tone} 어조로 말합니다.\n"
            f"말투 특징: {', '.join(traits)}\n실제로 한 말:\n{_examples(persona, 3)}"
        )},
        {"role": "user", "content": (
            f'아래 JSON 배열의 각 "text"를 {persona.name}의 말투로 다시 써 주세요. 사실, 숫자, '
            f"코드, 목록 같은 내용은 바꾸지 말고 말투만 바꾸세요.\n"
            f'답은 같은 "id"를 그대로 쓴 {{"id": ..., "text": ...}} 객체들의 JSON 배열 하나만 '
            f"쓰세요. 설명은 붙이지 마세요.\n\n{payload}"
        )},
    ]


def check_batch(answer: str, batch: list[Item]) -> dict[str, str]:
    """The restyled texts by id; BadAnswer unless exactly the batch's ids came back."""
    data = parse_json(answer)
    if not isinstance(data, list):
        raise BadAnswer(f"expected a JSON array, got {type(data).__name__}")
    texts: dict[str, str] = {}
    for item in data:
        if (not isinstance(item, dict) or set(item) != {"id", "text"}
                or not isinstance(item["id"], str | int) or not isinstance(item["text"], str)
                or not item["text"].strip()):
            raise BadAnswer(f'each item must be {{"id", "text"}} with text: {str(item)[:80]!r}')
        if str(item["id"]) in texts:
            raise BadAnswer(f"id {item['id']!r} appears twice")
        texts[str(item["id"])] = item["text"].strip()
    wanted = {i for i, _ in batch}
    if set(texts) != wanted:
        raise BadAnswer(f"ids {sorted(texts)} do not match the batch's {sorted(wanted)}")
    return texts


def items_of(dataset: Dataset) -> list[list[Item]]:
    """Per record, the (id, text) pairs to restyle."""
    if dataset.format == "alpaca":
        return [[(str(n), r.output)] for n, r in enumerate(dataset.records)]
    if dataset.format == "completion":
        return [[(str(n), r.completion)] for n, r in enumerate(dataset.records)]
    if dataset.format == "chat":
        return [[(f"{n}-{m}", t.content) for m, t in enumerate(r.messages) if t.role == "assistant"]
                for n, r in enumerate(dataset.records)]
    raise InvalidInput(f"{dataset.path}: restyle takes alpaca, completion or chat records, "
                       f"not {dataset.format}")


def _restyled(record: Any, fmt: str, n: int, done: dict[str, str]) -> dict[str, Any]:
    data = dump(record)
    if fmt == "alpaca":
        data["output"] = done[str(n)]
    elif fmt == "completion":
        data["completion"] = done[str(n)]
    else:
        for m, turn in enumerate(data["messages"]):
            if turn["role"] == "assistant":
                turn["content"] = done[f"{n}-{m}"]
    return data


def _settle(teacher: ChatBackend, messages: Callable[[list[Item]], list[Message]],
            batch: list[Item], save: Callable[[dict[str, str]], None],
            failed: dict[str, str]) -> None:
    """Restyle `batch`: ATTEMPTS tries, then each half on its own; lone failures go to `failed`."""
    problem = ""
    for _ in range(ATTEMPTS):
        try:
            save(check_batch(ask(teacher, messages(batch)), batch))
            return
        except BadAnswer as exc:
            problem = str(exc)
    if len(batch) == 1:
        failed[batch[0][0]] = problem
        return
    half = len(batch) // 2
    _settle(teacher, messages, batch[:half], save, failed)
    _settle(teacher, messages, batch[half:], save, failed)


def partial_lines(path: Path) -> list[str]:
    """The lines of a progress file (none if missing); one cut short by a crash is closed so
    the next append starts on a fresh line (the cut line is then ignored and redone)."""
    text = path.read_text(encoding="utf-8") if path.exists() else ""
    if text and not text.endswith("\n"):
        with path.open("a", encoding="utf-8") as handle:
            handle.write("\n")
    return text.splitlines()


def read_partial(path: Path) -> dict[str, str]:
    """Texts already restyled, by id."""
    done: dict[str, str] = {}
    for line in partial_lines(path):
        try:
            item = json.loads(line)
            done[item["id"]] = item["text"]
        except (json.JSONDecodeError, KeyError, TypeError):
            continue
    return done


def restyle(src: Path, out: Path, persona: Persona, teacher: ChatBackend,
            batch_size: int = 8) -> tuple[int, int]:
    """Restyle `src` into `out`; returns (records written, records skipped)."""
    if batch_size < 1:
        raise InvalidInput(f"--batch-size must be at least 1, got {batch_size}")
    dataset = load(src)
    check_out(out, dataset.format)
    per_record = items_of(dataset)
    traits = cached_traits(teacher, persona, out)
    partial = sidecar(out, ".partial.jsonl")
    done = read_partial(partial)
    items = [item for record in per_record for item in record]
    todo = [item for item in items if item[0] not in done]
    failed: dict[str, str] = {}
    with (tqdm(total=len(items), initial=len(items) - len(todo), unit="text", desc="restyle",
               file=sys.stderr) as bar,
          partial.open("a", encoding="utf-8") as log):
        def save(texts: dict[str, str]) -> None:
            log.write("".join(json.dumps({"id": i, "text": t}, ensure_ascii=False) + "\n"
                              for i, t in texts.items()))
            log.flush()
            os.fsync(log.fileno())
            done.update(texts)
            bar.update(len(texts))

        for start in range(0, len(todo), batch_size):
            _settle(teacher, lambda b: batch_messages(persona, traits, b),
                    todo[start:start + batch_size], save, failed)
    kept, skipped = [], []
    for n, (record, record_items) in enumerate(zip(dataset.records, per_record, strict=True)):
        problems = [failed[i] for i, _ in record_items if i in failed]
        if problems:
            skipped.append(dump(record))
            tqdm.write(f"{src}:{dataset.lines[n]}: skipped: {problems[0]}", file=sys.stderr)
        else:
            kept.append(_restyled(record, dataset.format, n, done))
    failed_path = sidecar(out, ".failed.jsonl")
    if skipped:
        write(skipped, failed_path, dataset.format)
    else:
        failed_path.unlink(missing_ok=True)
    if not kept:
        partial.unlink(missing_ok=True)
        raise BackendError(f"the teacher restyled no record; see {failed_path}")
    write(kept, out, dataset.format)
    partial.unlink(missing_ok=True)
    return len(kept), len(skipped)
