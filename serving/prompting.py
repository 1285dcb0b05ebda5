"""One message builder for every prompt strategy (the comparison Polaris was born from).

plain      the conversation only, no persona
system     persona system prompt (+ the user's North Star) through the model's chat template
fewshot    system + k example exchanges as real turns before the conversation
finetuned  a persona model with a one-line prompt (+ North Star)
"""

from collections.abc import Sequence
from dataclasses import dataclass

from serving.persona import Example, Persona
from serving.settings import STRATEGIES
from serving.types import Message


@dataclass(frozen=True)
class GoalCard:
    """The user's North Star as every critic reads it."""

    title: str
    description: str = ""
    constraints: str = ""
    evidence: str = ""

    def as_prompt(self) -> str:
        lines = ["[사용자의 북극성]", f"목표: {self.title.strip()}"]
        for label, value in (("설명", self.description), ("제약", self.constraints),
                             ("근거", self.evidence)):
            if value.strip():
                lines.append(f"{label}: {value.strip()}")
        return "\n".join(lines)


def build_messages(
    strategy: str,
    persona: Persona,
    history: Sequence[Message],
    *,
    goal: GoalCard | None = None,
    k: int = 5,
    examples: Sequence[Example] | None = None,
    note: str | None = None,
) -> list[Message]:
    """The messages to send for `strategy`; `history` ends with the user's latest message.

    `examples` overrides the card's own examples for the fewshot strategy (retrieval).
    `note` is appended to the system prompt (the debate's ledger as this critic sees it).
    """
    if strategy not in STRATEGIES:
        raise ValueError(f"unknown strategy {strategy!r}: use one of {', '.join(STRATEGIES)}")
    if not history or history[-1]["role"] != "user":
        raise ValueError("the conversation must end with the user's message")
    turns = [Message(role=m["role"], content=m["content"]) for m in history
             if m["role"] in ("user", "assistant")]
    if strategy == "plain":
        return turns
    if strategy == "finetuned":
        return [_system(persona.short_prompt(), goal, note), *turns]
    messages = [_system(persona.system_prompt, goal, note)]
    if strategy == "fewshot":
        for example in list(examples if examples is not None else persona.examples)[:k]:
            messages.append(Message(role="user", content=example.user))
            messages.append(Message(role="assistant", content=example.assistant))
    return [*messages, *turns]


def _system(prompt: str, goal: GoalCard | None, note: str | None = None) -> Message:
    text = prompt.strip()
    if goal and goal.title.strip():
        text = f"{text}\n\n{goal.as_prompt()}"
    if note and note.strip():
        text = f"{text}\n\n{note.strip()}"
    return Message(role="system", content=text)


def trim_history(history: Sequence[Message], max_chars: int) -> list[Message]:
    """The most recent turns that fit in `max_chars`, always keeping the last message and
    starting on a user turn so the template's turn order stays valid."""
    kept: list[Message] = []
    used = 0
    for message in reversed(history):
        used += len(message["content"])
        if kept and used > max_chars:
            break
        kept.append(message)
    kept.reverse()
    while len(kept) > 1 and kept[0]["role"] != "user":
        kept.pop(0)
    return kept
