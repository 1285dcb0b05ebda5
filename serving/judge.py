"""The persuasion judge: reads a debate and says, per critic, how persuaded it is (0–100) and
where each of its objections stands (open / addressed / conceded).

Pure core shared by the live debate (chatbot) and `polaris eval judge` (training): the output
schema, the prompt, parsing, the sanity rules, and one `judge(backend, ...)` call that retries
answers that do not parse. The judge runs at temperature 0 with its output constrained to the
schema (llama.cpp grammar, Ollama `format`, OpenAI `response_format`).
"""

import json
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError

from serving.backend import ChatBackend
from serving.errors import BackendError
from serving.prompting import GoalCard
from serving.types import GenerationOptions, Message

STATES = ("open", "addressed", "conceded")
RESOLVED = ("addressed", "conceded")
CATEGORIES = ("money", "experience", "skills", "timing", "family", "market", "health", "plan",
              "stability", "other")
INITIAL_SCORE = 0
REASON_CHARS = 40
OBJECTION_CHARS = 80
TRANSCRIPT_CHARS = 6_000  # the judge reads the most recent part of a long debate


class JudgeError(BackendError):
    """The judge gave no usable answer (after its retries); the ledger stays as it was."""


# -- the ledger --------------------------------------------------------------------------------


@dataclass(frozen=True)
class Objection:
    """One doubt a critic raised, and where it stands."""

    id: str
    text: str
    category: str = "other"
    state: str = "open"
    reason: str = ""

    @property
    def resolved(self) -> bool:
        return self.state in RESOLVED

    def to_dict(self) -> dict:
        return {"id": self.id, "category": self.category, "text": self.text,
                "state": self.state, "reason": self.reason}

    @classmethod
    def from_dict(cls, data: Mapping) -> "Objection":
        return cls(id=str(data["id"]), text=str(data["text"]),
                   category=str(data.get("category", "other")),
                   state=str(data.get("state", "open")), reason=str(data.get("reason", "")))


@dataclass(frozen=True)
class CriticLedger:
    """A critic's persuasion score and its objections."""

    score: int = INITIAL_SCORE
    objections: tuple[Objection, ...] = ()

    @property
    def open(self) -> list[Objection]:
        return [o for o in self.objections if not o.resolved]

    @property
    def all_resolved(self) -> bool:
        return bool(self.objections) and not self.open

    def next_id(self) -> str:
        numbers = [int(o.id[1:]) for o in self.objections if re.fullmatch(r"o\d+", o.id)]
        return f"o{max(numbers, default=0) + 1}"


Ledger = dict[str, CriticLedger]


@dataclass(frozen=True)
class Critic:
    """What the judge knows about a critic (from its persona card)."""

    id: str
    name: str
    stance: str = ""
    concession: str = ""

    @classmethod
    def from_persona(cls, persona) -> "Critic":
        return cls(persona.id, persona.name, persona.stance, persona.concession)


@dataclass(frozen=True)
class Turn:
    role: Literal["user", "assistant"]
    content: str
    persona: str | None = None


def seed_ledger(critics: Sequence[Critic]) -> Ledger:
    """Where a debate starts: score 0 and one open objection per critic, its card's stance."""
    return {c.id: CriticLedger(INITIAL_SCORE, (Objection("o1", _first_sentence(c.stance)),))
            for c in critics}


def _first_sentence(text: str) -> str:
    first = re.split(r"(?<=[.?!])\s+", text.strip(), maxsplit=1)[0]
    return first[:OBJECTION_CHARS] or "아직 설득되지 않았다"


# -- schema and prompt -------------------------------------------------------------------------


def judge_schema(ledger: Mapping[str, CriticLedger], max_new: int = 2) -> dict:
    """The JSON schema of one judgement: per critic, a state for every known objection id
    (as object keys, so ids cannot be invented or skipped), new objections, and a score."""
    critics = {}
    for critic, entry in ledger.items():
        states = {
            o.id: {
                "type": "object",
                "properties": {
                    "state": {"type": "string", "enum": list(STATES)},
                    "reason": {"type": "string", "maxLength": REASON_CHARS},
                },
                "required": ["state", "reason"],
                "additionalProperties": False,
            }
            for o in entry.objections
        }
        critics[critic] = {
            "type": "object",
            "properties": {
                "objections": {"type": "object", "properties": states,
                               "required": list(states), "additionalProperties": False},
                "new_objections": {
                    "type": "array",
                    "maxItems": max_new,
                    "items": {
                        "type": "object",
                        "properties": {
                            "category": {"type": "string", "enum": list(CATEGORIES)},
                            "text": {"type": "string", "maxLength": OBJECTION_CHARS},
                        },
                        "required": ["category", "text"],
                        "additionalProperties": False,
                    },
                },
                # an enum, not minimum/maximum: llama.cpp's converter ignores integer bounds
                "score": {"type": "integer", "enum": list(range(101))},
            },
            "required": ["objections", "new_objections", "score"],
            "additionalProperties": False,
        }
    return {"title": "judgement", "type": "object", "properties": critics,
            "required": list(critics), "additionalProperties": False}


JUDGE_SYSTEM = """당신은 토론의 심판입니다. 사용자가 자신의 목표(북극성)를 비평가들에게 설득하고 있습니다.
대화를 읽고 비평가마다 반론의 상태, 새로 나온 반론, 설득 점수를 JSON 하나로만 답하세요.
- open: 사용자가 아직 답하지 않았거나, 근거 없이 감정이나 다짐만 말했다.
- addressed: 사용자가 숫자, 기록, 경험, 구체적인 계획 같은 근거로 답했다.
- conceded: 비평가가 대화 속에서 그 반론을 직접 인정했다.
- score: 그 비평가가 지금 얼마나 설득되었는지 0~100. 근거 없는 호소로는 오르지 않는다.
- reason: 왜 그 상태인지 한 줄, 40자 이내.
- new_objections: 비평가의 말에서 새로 나온 의문만, 비평가마다 최대 2개. 없으면 빈 배열.
JSON 밖에는 아무것도 쓰지 마세요."""


def judge_messages(goal: GoalCard | None, critics: Sequence[Critic], turns: Sequence[Turn],
                   ledger: Mapping[str, CriticLedger]) -> list[Message]:
    """The judge's prompt: goal, critics, the ledger so far and the transcript (attributed)."""
    names = {c.id: c.name for c in critics}
    parts = [goal.as_prompt() if goal and goal.title.strip() else "[사용자의 북극성]\n(적지 않음)"]
    lines = ["[비평가와 지금까지의 반론]"]
    for critic in critics:
        entry = ledger.get(critic.id, CriticLedger())
        lines.append(f"{critic.id} ({critic.name}) — 의심: {critic.stance}")
        for o in entry.objections:
            lines.append(f"  {o.id} [{o.state}] ({o.category}) {o.text}")
    parts.append("\n".join(lines))
    transcript = [f"[{'사용자' if t.role == 'user' else names.get(t.persona or '', t.persona)}] "
                  f"{t.content.strip()}" for t in turns]
    text = "\n".join(transcript)
    if len(text) > TRANSCRIPT_CHARS:
        text = "…" + text[-TRANSCRIPT_CHARS:]
    parts.append(f"[대화]\n{text}")
    example = {c.id: {"objections": {o.id: {"state": o.state, "reason": "…"}
                                     for o in ledger.get(c.id, CriticLedger()).objections},
                      "new_objections": [], "score": ledger.get(c.id, CriticLedger()).score}
               for c in critics}
    parts.append("형식 (지금까지의 값입니다. 이번 대화를 읽고 고쳐 쓰세요):\n"
                 + json.dumps(example, ensure_ascii=False))
    return [Message(role="system", content=JUDGE_SYSTEM),
            Message(role="user", content="\n\n".join(parts))]


# -- parsing and sanity rules ------------------------------------------------------------------


class _State(BaseModel):
    model_config = ConfigDict(extra="ignore")
    state: Literal["open", "addressed", "conceded"]
    reason: str = ""


class _New(BaseModel):
    model_config = ConfigDict(extra="ignore")
    category: str = "other"
    text: str = Field(min_length=1)


class _CriticAnswer(BaseModel):
    model_config = ConfigDict(extra="ignore")
    objections: dict[str, _State] = {}
    new_objections: list[_New] = []
    score: int


def parse_judgement(text: str, critics: Sequence[str]) -> dict[str, _CriticAnswer]:
    """The judge's text as per-critic answers; JudgeError says what is wrong with it."""
    match = re.search(r"\{.*\}", text, re.DOTALL)  # tolerate prose or ``` fences around it
    if match is None:
        raise JudgeError("the judge's answer has no JSON object")
    try:
        data = json.loads(match.group(0))
    except json.JSONDecodeError as exc:
        raise JudgeError(f"the judge's answer is not valid JSON ({exc.msg} at {exc.pos})") from None
    if not isinstance(data, dict):
        raise JudgeError("the judge's answer must be a JSON object keyed by critic id")
    missing = [c for c in critics if c not in data]
    if missing:
        raise JudgeError(f"the judge's answer has no entry for {', '.join(missing)}")
    answers = {}
    for critic in critics:
        try:
            answers[critic] = _CriticAnswer.model_validate(data[critic])
        except ValidationError as exc:
            error = exc.errors()[0]
            where = ".".join(str(p) for p in (critic, *error["loc"]))
            raise JudgeError(f"the judge's answer at {where}: {error['msg']}") from None
    return answers


@dataclass(frozen=True)
class Rules:
    """Sanity rules on top of the judge's answer.

    max_step: how far a score may move in one turn (None: any distance — used when judging a
      whole debate at once, as the evaluation does). transitions: a `conceded` objection stays
      conceded, and an open one cannot jump to conceded (a critic concedes only what the user
      has already answered).
    """

    max_step: int | None = 25
    transitions: bool = True
    max_new: int = 2
    max_objections: int = 8


def apply_rules(previous: Mapping[str, CriticLedger], answers: Mapping[str, _CriticAnswer],
                rules: Rules = Rules()) -> tuple[Ledger, list[str]]:
    """The new ledger, and a note for each correction the rules made."""
    ledger: Ledger = {}
    notes: list[str] = []
    for critic, before in previous.items():
        answer = answers.get(critic)
        if answer is None:
            ledger[critic] = before
            continue
        objections = []
        for old in before.objections:
            given = answer.objections.get(old.id)
            if given is None:
                objections.append(old)
                continue
            state = given.state
            if rules.transitions and old.state == "conceded" and state != "conceded":
                notes.append(f"{critic}/{old.id}: conceded stays conceded (judge said {state})")
                state = "conceded"
            elif rules.transitions and old.state == "open" and state == "conceded":
                notes.append(f"{critic}/{old.id}: open cannot jump to conceded; now addressed")
                state = "addressed"
            objections.append(replace(old, state=state,
                                      reason=given.reason.strip()[:REASON_CHARS]))
        if unknown := sorted(set(answer.objections) - {o.id for o in before.objections}):
            notes.append(f"{critic}: ignored unknown objection ids {', '.join(unknown)}")
        entry = CriticLedger(before.score, tuple(objections))
        known = {o.text for o in objections}
        for new in answer.new_objections[: rules.max_new]:
            text = " ".join(new.text.split())[:OBJECTION_CHARS]
            if not text or text in known or len(entry.objections) >= rules.max_objections:
                continue
            category = new.category if new.category in CATEGORIES else "other"
            entry = CriticLedger(entry.score, (*entry.objections,
                                               Objection(entry.next_id(), text, category)))
            known.add(text)
        score = min(100, max(0, answer.score))
        if rules.max_step is not None and abs(score - before.score) > rules.max_step:
            bounded = before.score + rules.max_step * (1 if score > before.score else -1)
            notes.append(f"{critic}: score {before.score}→{score} bounded to {bounded}")
            score = bounded
        ledger[critic] = replace(entry, score=score)
    return ledger, notes


# -- the call ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Verdict:
    ledger: Ledger
    attempts: int
    raw: str
    notes: tuple[str, ...] = field(default=())


def judge_options(max_tokens: int = 512) -> GenerationOptions:
    return GenerationOptions(max_tokens=max_tokens, temperature=0.0, top_p=1.0, top_k=1,
                             min_p=0.0, repeat_penalty=1.0, seed=0)


def judge(backend: ChatBackend, *, goal: GoalCard | None, critics: Sequence[Critic],
          turns: Sequence[Turn], ledger: Mapping[str, CriticLedger] | None = None,
          rules: Rules = Rules(), max_tokens: int = 512, retries: int = 2) -> Verdict:
    """Judge the debate so far. Invalid answers are retried with the error shown to the model;
    after `retries` retries JudgeError is raised and the caller keeps its ledger."""
    seeded = seed_ledger(critics)  # critics new to the ledger start from their stance
    ledger = {c.id: (ledger or {}).get(c.id, seeded[c.id]) for c in critics}
    options = replace(judge_options(max_tokens), json_schema=judge_schema(ledger, rules.max_new))
    messages = judge_messages(goal, critics, turns, ledger)
    problem = ""
    for attempt in range(1, retries + 2):
        text = backend.complete(messages, options).text
        try:
            answers = parse_judgement(text, list(ledger))
        except JudgeError as exc:
            problem = str(exc)
            messages = [*messages, Message(role="assistant", content=text[:1_000]),
                        Message(role="user", content=f"그 답은 쓸 수 없습니다: {problem}. "
                                                      f"형식에 맞는 JSON 하나만 다시 쓰세요.")]
            continue
        new, notes = apply_rules(ledger, answers, rules)
        return Verdict(new, attempt, text, tuple(notes))
    raise JudgeError(
        f"the judge ({backend.kind}/{backend.model}) gave no usable answer in {retries + 1} "
        f"tries ({problem}): pick a stronger judge model (POLARIS_JUDGE_BACKEND / "
        f"POLARIS_JUDGE_MODEL) or raise POLARIS_JUDGE_MAX_TOKENS"
    )
