"""Summary numbers of a dataset file (for `polaris data stats` and the datasheet)."""

import statistics
from collections import Counter
from pathlib import Path
from typing import Any

from training.formats import ChatRecord, PreferenceRecord, load
from training.quality import turn_register


def describe(path: Path) -> dict[str, Any]:
    dataset = load(path)
    summary: dict[str, Any] = {"file": str(path), "format": dataset.format,
                               "records": len(dataset)}
    replies: list[str] = []
    if dataset.format == "chat":
        records: list[ChatRecord] = dataset.records  # type: ignore[assignment]
        critic_turns = [sum(m.role == "assistant" for m in r.messages) for r in records]
        replies = [m.content for r in records for m in r.messages if m.role == "assistant"]
        summary["multi_turn"] = sum(n >= 2 for n in critic_turns)
        summary["assistant_turns"] = sum(critic_turns)
        topics = Counter(r.topic for r in records if r.topic)
        if topics:
            summary["top_topics"] = dict(topics.most_common(5))
    elif dataset.format == "preference":
        pairs: list[PreferenceRecord] = dataset.records  # type: ignore[assignment]
        replies = [p.chosen for p in pairs]
        summary["mean_rejected_chars"] = round(statistics.mean(len(p.rejected) for p in pairs), 1)
    if replies:
        summary["mean_reply_chars"] = round(statistics.mean(len(r) for r in replies), 1)
        registers = Counter(turn_register(r) for r in replies)
        summary["reply_register"] = {str(k): v for k, v in registers.most_common()}
    return summary
