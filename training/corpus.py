"""The persona corpus in training/data/: where each file lives and how the split is made.

    python -m training.corpus split   merge critics/<id>.new.jsonl (new conversations, if any)
                                      and the card's examples into <id>.train.jsonl and
                                      <id>.heldout.jsonl; a conversation's side of the split
                                      depends only on its first user message
    python -m training.corpus report  the datasheet's numbers as a Markdown table
"""

import json
import statistics
import sys
from collections import Counter
from pathlib import Path

from serving.files import atomic_write_text
from serving.persona import STARTING_ORDER, Persona, load_personas
from training.formats import ChatRecord, load
from training.quality import register_report, split_heldout

DATA = Path(__file__).parent / "data"
CRITICS = DATA / "critics"
PREFERENCES = DATA / "preferences"
JUDGE_SET = DATA / "judge" / "debates.jsonl"
MENU = DATA / "menu"
CARD_TOPIC = "카드 예시"  # conversations that are the persona card's few-shot examples


def train_path(persona_id: str) -> Path:
    return CRITICS / f"{persona_id}.train.jsonl"


def heldout_path(persona_id: str) -> Path:
    return CRITICS / f"{persona_id}.heldout.jsonl"


def opening(record: ChatRecord) -> str:
    """The first user message: what makes a conversation distinct (and picks its split)."""
    return next(m.content for m in record.messages if m.role == "user")


def card_conversations(persona: Persona) -> list[ChatRecord]:
    """The card's few-shot examples as single-turn conversations (always in train)."""
    return [
        ChatRecord(id=f"{persona.id}-card-{i:02d}", topic=CARD_TOPIC, messages=[
            {"role": "system", "content": persona.system_prompt},
            {"role": "user", "content": example.user},
            {"role": "assistant", "content": example.assistant},
        ])
        for i, example in enumerate(persona.examples, start=1)
    ]


def _read(path: Path) -> list[ChatRecord]:
    return list(load(path, expect="chat").records) if path.exists() else []


def split(persona: Persona) -> tuple[int, int]:
    """Rebuild the train/held-out files of one critic; returns their sizes."""
    new = CRITICS / f"{persona.id}.new.jsonl"
    records = [r for r in _read(train_path(persona.id)) + _read(heldout_path(persona.id))
               if r.topic != CARD_TOPIC]
    records += _read(new)
    records += card_conversations(persona)
    train, heldout = split_heldout(records, key=opening,
                                   keep_in_train=lambda r: r.topic == CARD_TOPIC)
    for path, part in ((train_path(persona.id), train), (heldout_path(persona.id), heldout)):
        atomic_write_text(path, "".join(
            json.dumps(r.model_dump(exclude_none=True), ensure_ascii=False) + "\n" for r in part))
    new.unlink(missing_ok=True)
    return len(train), len(heldout)


def report() -> str:
    """Per-critic counts, reply length and register rate, as the datasheet shows them."""
    personas = load_personas()
    rows = [("| critic | train | held out | multi-turn | critic turns | mean reply chars "
            "| register rate | preference pairs |"), "|---|---|---|---|---|---|---|---|"]
    for pid in STARTING_ORDER:
        train = load(train_path(pid), expect="chat").records
        heldout = load(heldout_path(pid), expect="chat").records
        records = train + heldout
        replies = [m.content for r in records for m in r.messages if m.role == "assistant"]
        multi = sum(sum(m.role == "assistant" for m in r.messages) >= 2 for r in records)
        pairs = load(PREFERENCES / f"{pid}.jsonl", expect="preference").records
        rate = register_report(replies + [p.chosen for p in pairs], personas[pid].speech).rate
        rows.append(f"| {pid} | {len(train)} | {len(heldout)} | {multi} | {len(replies)} "
                    f"| {statistics.mean(map(len, replies)):.0f} | {rate:.1%} | {len(pairs)} |")
    debates = load(JUDGE_SET, expect="debate").records
    by_quality = Counter(d.quality for d in debates)
    scores = {q: statistics.mean(label.score for d in debates if d.quality == q
                                 for label in d.labels.values()) for q in by_quality}
    rows += ["", f"judge set: {len(debates)} debates, "
             + ", ".join(f"{q} {by_quality[q]} (mean score {scores[q]:.0f})"
                         for q in ("weak", "mixed", "strong") if q in by_quality)]
    menu = load(MENU / "conversations.jsonl", expect="chat").records
    seeds = load(MENU / "seed_tasks.jsonl", expect="seed").records
    rows.append(f"menu assistant: {len(menu)} conversations, {len(seeds)} seed tasks")
    return "\n".join(rows)


def main(argv: list[str]) -> int:
    if argv == ["report"]:
        print(report())
        return 0
    if argv != ["split"]:
        print(__doc__, file=sys.stderr)
        return 2
    personas = load_personas()
    for persona_id in STARTING_ORDER:
        train, heldout = split(personas[persona_id])
        print(f"{persona_id}: {train} train, {heldout} held out")
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
