"""Self-instruct: grow a task set from seed tasks through a teacher model.

Each round shows the teacher 3 random seed tasks and 2 already generated ones and asks for new
tasks as a JSON array. Every task is validated with SeedTask (an invalid one is dropped) and
dropped when its instruction is a near-duplicate (character ROUGE-L >= threshold) of any seed or
generated instruction. Accepted tasks are appended to OUT.partial.jsonl as they come, so a re-run
resumes; OUT (seed-format JSONL, the new tasks only, ids `gen-0001`...) is written atomically
once N tasks exist or the rounds run out.
"""

import json
import random
import sys
from dataclasses import dataclass
from pathlib import Path

from pydantic import ValidationError
from tqdm import tqdm

from serving.backend import ChatBackend
from serving.errors import BackendError, InvalidInput
from serving.types import Message
from training.convert import check_out, dump, write
from training.formats import SeedTask, load
from training.quality import rouge_l
from training.restyle import BadAnswer, ask, parse_json, partial_lines, sidecar

PER_ROUND = 5  # tasks asked for in each round


@dataclass
class Grown:
    tasks: list[SeedTask]
    rounds: int = 0
    duplicates: int = 0
    invalid: int = 0


def _shown(task: SeedTask) -> str:
    data = dump(task)
    data.pop("id")
    data["instances"] = data["instances"][:1]
    return json.dumps(data, ensure_ascii=False)


def round_messages(shown: list[SeedTask]) -> list[Message]:
    examples = "\n".join(f"{k}. {_shown(t)}" for k, t in enumerate(shown, start=1))
    return [
        {"role": "system", "content": "당신은 언어 모델 학습용 과제를 만드는 한국어 출제자입니다."},
        {"role": "user", "content": (
            f"다음은 과제의 예입니다.\n{examples}\n\n"
            f"위 예와 겹치지 않는 새롭고 다양한 과제 {PER_ROUND}개를 만들어 주세요. 각 과제는 "
            f'{{"name": 짧은 영문 이름, "instruction": 지시문, "instances": [{{"input": 입력(없으면 '
            f'""), "output": 모범 답}}], "is_classification": 분류 과제이면 true}} 형식입니다.\n'
            f"답은 과제 객체들의 JSON 배열 하나만 쓰세요. 설명은 붙이지 마세요."
        )},
    ]


def _read_partial(path: Path) -> list[SeedTask]:
    tasks = []
    for line in partial_lines(path):
        try:
            tasks.append(SeedTask.model_validate_json(line))
        except ValidationError:
            continue  # a line cut short by a crash
    return tasks


def grow(seeds: list[SeedTask], teacher: ChatBackend, n: int, partial: Path,
         max_rounds: int | None = None, threshold: float = 0.7,
         rng: random.Random | None = None) -> Grown:
    """Up to `n` new tasks (resuming from and appending to `partial`)."""
    rng = rng or random.Random()
    max_rounds = 2 * n + 10 if max_rounds is None else max_rounds
    result = Grown(_read_partial(partial)[:n])
    instructions = [t.instruction for t in seeds + result.tasks]
    ids = {t.id for t in seeds + result.tasks}
    number = len(result.tasks) + 1
    with (tqdm(total=n, initial=len(result.tasks), unit="task", desc="self-instruct",
               file=sys.stderr) as bar,
          partial.open("a", encoding="utf-8") as log):
        while len(result.tasks) < n and result.rounds < max_rounds:
            result.rounds += 1
            shown = (rng.sample(seeds, min(3, len(seeds)))
                     + rng.sample(result.tasks, min(2, len(result.tasks))))
            try:
                answer = parse_json(ask(teacher, round_messages(shown)))
            except BadAnswer:
                result.invalid += 1
                continue
            for raw in answer if isinstance(answer, list) else [answer]:
                if len(result.tasks) >= n:
                    break
                while f"gen-{number:04d}" in ids:
                    number += 1
                try:
                    task = SeedTask.model_validate({**raw, "id": f"gen-{number:04d}"})
                except (ValidationError, TypeError):
                    result.invalid += 1
                    continue
                if any(rouge_l(task.instruction, seen) >= threshold for seen in instructions):
                    result.duplicates += 1
                    continue
                result.tasks.append(task)
                instructions.append(task.instruction)
                ids.add(task.id)
                log.write(task.model_dump_json() + "\n")
                log.flush()
                bar.update(1)
    return result


def self_instruct(seeds_path: Path, out: Path, teacher: ChatBackend, n: int,
                  max_rounds: int | None = None, threshold: float = 0.7,
                  rng: random.Random | None = None) -> Grown:
    """Grow `n` tasks from the seed file into `out`; the partial file is removed at the end."""
    if n < 1:
        raise InvalidInput(f"--n must be at least 1, got {n}")
    seeds = load(seeds_path, expect="seed").records
    check_out(out, "seed")
    partial = sidecar(out, ".partial.jsonl")
    result = grow(seeds, teacher, n, partial, max_rounds, threshold, rng)  # type: ignore[arg-type]
    if not result.tasks:
        raise BackendError(f"the teacher gave no usable new task in {result.rounds} rounds; "
                           f"try a stronger --teacher-model")
    write([dump(t) for t in result.tasks], out, "seed")
    partial.unlink(missing_ok=True)
    return result
