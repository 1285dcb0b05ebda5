"""Panel debate mechanics: who answers a turn, each critic's tone, the judge's ledger and the
concession rules that reach the critics' prompts.

The critic never sees its score. It is told which of its objections are still open (keep
pressing), which the user has answered (it may concede those, and only those), and, once all
are resolved and the judge's score has passed CONCEDE_AT, to acknowledge the user's North Star
in character, as its card's `concession` describes.
"""

import re
from collections.abc import Sequence
from typing import TYPE_CHECKING

from chatbot.models import ChatSession, Judgement
from chatbot.store import Store
from serving.judge import Critic, CriticLedger, Ledger, Objection, Turn, Verdict, judge, seed_ledger
from serving.persona import Persona
from serving.prompting import GoalCard

if TYPE_CHECKING:
    from chatbot.engine import ChatEngine

TURN_ORDERS = {"all": "모두 답하기", "round-robin": "한 명씩 돌아가며"}
TONES = ("에겐", "테토", "neutral")
TONE_LABELS = {"에겐": "에겐 · 부드럽고 공감하는", "테토": "테토 · 단호하고 직설적인",
               "neutral": "중립 · 담담한"}
TONE_PROMPTS = {
    "에겐": "말투의 결: 부드럽고 공감하는 편입니다. 상대의 마음과 수고를 먼저 알아준 다음, "
            "걱정되는 점을 조심스럽지만 분명하게 말합니다.",
    "테토": "말투의 결: 단호하고 직설적인 편입니다. 돌려 말하지 않고 핵심만 짧게 찌르며, "
            "빈말이나 위로로 시작하지 않습니다.",
    "neutral": "말투의 결: 특별히 부드럽지도 거칠지도 않게, 담담하게 사실 위주로 말합니다.",
}
CRITIC_OPTIONS = ("tone", "model", "strategy")
CONCEDE_AT = 70  # the judge's score a critic must reach before it acknowledges the goal
_MENTION = re.compile(r"@(\S+(?:\s+\S+){0,3})")


# -- turn order --------------------------------------------------------------------------------


def addressed(text: str, panel: Sequence[str], personas: dict[str, Persona]) -> str | None:
    """The critic an `@이름` (or `@id`) in `text` speaks to, if it names one on the panel.
    Names may contain spaces (`@은퇴한 개발자 선배`); spaces may also be left out."""
    for match in _MENTION.finditer(text):
        said = match.group(1).replace(" ", "")
        best = None
        for pid in panel:
            persona = personas.get(pid)
            for name in (pid, persona.name if persona else pid):
                key = name.replace(" ", "")
                if said.startswith(key) and (best is None or len(key) > best[1]):
                    best = (pid, len(key))
        if best:
            return best[0]
    return None


def speakers(chat: ChatSession, text: str, personas: dict[str, Persona],
             user_turns: int) -> list[str]:
    """Who answers the user's `user_turns`-th message (1-based): the one it @-addresses, else
    everyone ("all") or the next critic in turn ("round-robin")."""
    panel = list(chat.personas)
    if target := addressed(text, panel, personas):
        return [target]
    if chat.turn_order == "round-robin":
        return [panel[(user_turns - 1) % len(panel)]]
    return panel


def last_turn_speakers(store: Store, chat: ChatSession, personas: dict[str, Persona]) -> list[str]:
    """Who answered (or should answer) the user's latest message, e.g. to regenerate."""
    users = [m for m in store.messages(chat.id) if m.role == "user"]
    if not users:
        return list(chat.personas)
    return speakers(chat, users[-1].content, personas, len(users))


# -- per-critic settings -----------------------------------------------------------------------


def critic_option(chat: ChatSession, persona_id: str, key: str) -> str | None:
    """A per-critic override (tone, model, strategy) for this session, or None."""
    value = (chat.critic_settings or {}).get(persona_id, {}).get(key)
    return value or None


def with_critic_option(settings: dict | None, persona_id: str, key: str,
                       value: str | None) -> dict:
    """A session's critic_settings with one override set (None or "" removes it)."""
    if key not in CRITIC_OPTIONS:
        raise ValueError(f"unknown critic setting {key!r}: use one of {', '.join(CRITIC_OPTIONS)}")
    if key == "tone" and value and value not in TONES:
        raise ValueError(f"unknown tone {value!r}: use one of {', '.join(TONES)}")
    settings = {pid: dict(opts) for pid, opts in (settings or {}).items()}
    opts = settings.setdefault(persona_id, {})
    if value:
        opts[key] = value
    else:
        opts.pop(key, None)
    return {pid: opts for pid, opts in settings.items() if opts}


def styled(persona: Persona, tone: str | None) -> Persona:
    """The persona with its tone overridden: the card's prompt plus a line that sets the tone.
    The card's own tone is already in its prompt, so it is left as it is."""
    if not tone or tone == persona.tone:
        return persona
    if tone not in TONES:
        raise ValueError(f"unknown tone {tone!r}: use one of {', '.join(TONES)}")
    return persona.model_copy(update={
        "tone": tone, "system_prompt": f"{persona.system_prompt.rstrip()}\n{TONE_PROMPTS[tone]}"})


# -- the ledger --------------------------------------------------------------------------------


def ledger_from(rows: Sequence[Judgement], panel: Sequence[str],
                personas: dict[str, Persona]) -> Ledger:
    """The newest judgement per critic; critics not judged yet start from their card."""
    seeded = seed_ledger([_critic(pid, personas) for pid in panel])
    latest: dict[str, Judgement] = {}
    for row in rows:
        latest[row.persona] = row
    return {
        pid: (CriticLedger(latest[pid].score,
                           tuple(Objection.from_dict(o) for o in latest[pid].objections))
              if pid in latest else seeded[pid])
        for pid in panel
    }


def current_ledger(store: Store, chat: ChatSession, personas: dict[str, Persona]) -> Ledger:
    return ledger_from(store.judgements(chat.id), chat.personas, personas)


def score_history(rows: Sequence[Judgement]) -> list[dict[str, int]]:
    """Per judged user turn, each critic's score (the meter's chart)."""
    turns: dict[int, dict[str, int]] = {}
    for row in rows:
        turns.setdefault(row.message_id, {})[row.persona] = row.score
    return [turns[mid] for mid in sorted(turns)]


def _critic(pid: str, personas: dict[str, Persona]) -> Critic:
    persona = personas.get(pid)
    return Critic.from_persona(persona) if persona else Critic(pid, pid)


# -- concession rules --------------------------------------------------------------------------


def concession_due(entry: CriticLedger, threshold: int = CONCEDE_AT) -> bool:
    """All of the critic's objections are resolved and the judge's score passed the bar."""
    return entry.all_resolved and entry.score >= threshold


def may_concede(entry: CriticLedger) -> list[Objection]:
    """The objections a critic may concede: those the user has answered (never open ones)."""
    return [o for o in entry.objections if o.state == "addressed"]


def critic_note(entry: CriticLedger, persona: Persona, goal: GoalCard | None,
                threshold: int = CONCEDE_AT) -> str:
    """What the critic is told about the debate so far (never its score)."""
    lines = ["[토론 메모 — 당신만 보는 기록]"]
    open_ = entry.open
    if open_:
        lines.append("아직 답을 듣지 못한 반론입니다. 인정하지 말고 계속 파고드세요:")
        lines += [f"- {o.text}" for o in open_]
    if answered := may_concede(entry):
        lines.append("사용자가 근거를 들어 답한 반론입니다. 이 부분만은 인정해도 됩니다:")
        lines += [f"- {o.text}" for o in answered]
    if conceded := [o for o in entry.objections if o.state == "conceded"]:
        lines.append("이미 인정한 반론입니다. 다시 꺼내지 마세요:")
        lines += [f"- {o.text}" for o in conceded]
    if concession_due(entry, threshold):
        title = goal.title.strip() if goal and goal.title.strip() else "사용자의 목표"
        lines.append(
            f"사용자는 당신의 반론에 모두 근거로 답했습니다. 당신이 인정하는 기준: "
            f"{persona.concession.strip()}\n말투와 캐릭터를 그대로 지키면서, 사용자의 북극성 "
            f"\"{title}\"을(를) 인정한다고 한두 문장으로 말하세요. 남은 걱정은 하나만 짧게 "
            f"덧붙여도 됩니다.")
    return "\n".join(lines)


# -- running the judge -------------------------------------------------------------------------


def judge_turn(engine: "ChatEngine", session_id: int) -> Verdict:
    """Judge the debate up to the user's latest message and store one row per critic.
    Raises JudgeError (or a BackendError) when the judge gives nothing usable; the ledger
    then stays as it was."""
    store = engine.store
    chat = store.get_session(session_id)
    messages = store.messages(session_id)
    last_user = max((i for i, m in enumerate(messages) if m.role == "user"), default=None)
    if last_user is None:
        raise ValueError("심판이 판정할 사용자 메시지가 없습니다: 먼저 메시지를 보내세요.")
    turns = [Turn(m.role, m.content, m.persona) for m in messages[: last_user + 1]
             if m.content.strip()]
    personas = engine.personas
    previous = current_ledger(store, chat, personas)
    backend = engine.judge_backend()
    verdict = judge(backend, goal=engine.goal_card(chat),
                    critics=[_critic(pid, personas) for pid in chat.personas], turns=turns,
                    ledger=previous, max_tokens=engine.settings.judge_max_tokens)
    message_id = messages[last_user].id
    store.add_judgements([
        Judgement(session_id=session_id, message_id=message_id, persona=pid, score=entry.score,
                  objections=[o.to_dict() for o in entry.objections],
                  notes=[n for n in verdict.notes if n.startswith(f"{pid}")],
                  judge_backend=backend.kind, judge_model=backend.model)
        for pid, entry in verdict.ledger.items()
    ])
    return verdict
