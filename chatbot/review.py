"""The review report at the end of a session, computed from the judge's ledger.

Everything here is deterministic: the strongest rebuttal is the user message after which the
critics' mean score rose most (ties: more objections resolved, then the earlier one), the weakest
the one after which it rose least; unresolved objections come from the final ledger, and the
evidence and homework from each open objection's category and its critic's card (`concession`).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from chatbot.debate import concession_due, ledger_from
from chatbot.models import ChatMessage, Judgement
from chatbot.store import Store
from serving.judge import INITIAL_SCORE, RESOLVED
from serving.persona import Persona

QUOTE_CHARS = 200
EVIDENCE_HINTS = {
    "money": "통장 잔고와 월 고정비로 계산한, 수입 없이 버틸 수 있는 개월 수",
    "experience": "그 분야에서 실제로 해 본 일의 기록 (프로젝트, 기간, 결과)",
    "skills": "실력을 보여 주는 결과물 (포트폴리오, 자격, 남의 평가)",
    "timing": "왜 지금이어야 하는지: 일정표와 마감, 미루면 잃는 것",
    "family": "가족과 실제로 나눈 대화와 함께 정한 조건",
    "market": "유료 고객 수, 월 매출 추이, 시장 시세 같은 확인 가능한 숫자",
    "health": "건강과 생활 리듬을 지킬 구체적인 계획",
    "plan": "단계별 일정, 중간 점검 기준, 안 될 때 돌아갈 길",
    "stability": "수입이 끊겨도 버틸 안전망 (비상금, 보험, 돌아갈 자리)",
    "other": "그 걱정에 정면으로 답하는 숫자나 기록",
}


@dataclass(frozen=True)
class TurnScore:
    message: ChatMessage
    scores: dict[str, int]
    delta: float  # mean change of the critics' scores after this message
    resolved: list[str]  # objections that became addressed or conceded after it


def turn_scores(messages: Sequence[ChatMessage], rows: Sequence[Judgement]) -> list[TurnScore]:
    """Each judged user message with the score change and the objections it resolved."""
    by_id = {m.id: m for m in messages}
    per_turn: dict[int, dict[str, Judgement]] = {}
    for row in rows:
        per_turn.setdefault(row.message_id, {})[row.persona] = row
    previous: dict[str, Judgement | None] = {}
    turns = []
    for message_id in sorted(per_turn):
        judged = per_turn[message_id]
        deltas, resolved = [], []
        for persona, row in judged.items():
            before = previous.get(persona)
            deltas.append(row.score - (before.score if before else INITIAL_SCORE))
            was = {o["id"]: o["state"] for o in (before.objections if before else [])}
            resolved += [o["text"] for o in row.objections
                         if o["state"] in RESOLVED and was.get(o["id"], "open") not in RESOLVED]
            previous[persona] = row
        if message_id in by_id:
            turns.append(TurnScore(by_id[message_id], {p: r.score for p, r in judged.items()},
                                   sum(deltas) / len(deltas), resolved))
    return turns


def build_review(store: Store, session_id: int, personas: dict[str, Persona]) -> dict:
    """The review's data (JSON-ready): final scores, strongest/weakest rebuttals, what is
    unresolved, what evidence would have helped, homework."""
    chat = store.get_session(session_id)
    goal = store.get_goal(chat.goal_id) if chat.goal_id else None
    messages = store.messages(session_id)
    rows = store.judgements(session_id)
    ledger = ledger_from(rows, chat.personas, personas)
    turns = turn_scores(messages, rows)

    def name(pid: str) -> str:
        return personas[pid].name if pid in personas else pid

    final = {
        pid: {"name": name(pid), "score": entry.score,
              "objections": len(entry.objections),
              "resolved": sum(o.resolved for o in entry.objections),
              "conceded": concession_due(entry)}
        for pid, entry in ledger.items()
    }
    strongest = weakest = None
    if turns:
        best = max(turns, key=lambda t: (t.delta, len(t.resolved), -t.message.id))
        strongest = _turn_dict(best)
        if len(turns) > 1:
            worst = min(turns, key=lambda t: (t.delta, len(t.resolved), -t.message.id))
            weakest = _turn_dict(worst) if worst is not best else None
    unresolved = [{"critic": pid, "name": name(pid), "id": o.id, "category": o.category,
                   "text": o.text}
                  for pid, entry in ledger.items() for o in entry.objections if not o.resolved]
    evidence = []
    for pid, entry in ledger.items():
        open_ = [o for o in entry.objections if not o.resolved]
        if open_:
            hints = list(dict.fromkeys(EVIDENCE_HINTS.get(o.category, EVIDENCE_HINTS["other"])
                                       for o in open_))
            evidence.append({"critic": pid, "name": name(pid),
                             "concession": personas[pid].concession.strip()
                             if pid in personas else "", "hints": hints})
    homework = [f"{o['name']}의 「{o['text']}」에 답할 근거 준비: "
                f"{EVIDENCE_HINTS.get(o['category'], EVIDENCE_HINTS['other'])}"
                for o in unresolved]
    if not rows:
        homework.append("이번 세션에는 심판 기록이 없습니다: 토론 화면에서 대화하면 "
                        "반론과 점수가 기록됩니다.")
    scores = [f["score"] for f in final.values()]
    return {
        "session_id": chat.id, "title": chat.title,
        "goal_id": chat.goal_id, "goal": goal.title if goal else None,
        "critics": list(chat.personas),
        "user_turns": sum(m.role == "user" for m in messages),
        "judged_turns": len(turns),
        "mean_score": round(sum(scores) / len(scores), 1) if scores else 0.0,
        "final": final, "strongest": strongest, "weakest": weakest,
        "accepted": [_turn_dict(t) for t in turns if t.resolved],
        "unresolved": unresolved, "evidence": evidence, "homework": homework,
        "history": [t.scores for t in turns],
    }


def _turn_dict(turn: TurnScore) -> dict:
    return {"message_id": turn.message.id, "quote": _quote(turn.message.content),
            "delta": round(turn.delta, 1), "resolved": turn.resolved}


def _quote(text: str) -> str:
    text = " ".join(text.split())
    return text if len(text) <= QUOTE_CHARS else text[: QUOTE_CHARS - 1] + "…"


def render_markdown(data: dict) -> str:
    """The review as Markdown (shown in the UI, printed by `polaris review`, exported)."""
    lines = [f"# 토론 리뷰 — {data['title']}", ""]
    if data["goal"]:
        lines.append(f"**북극성**: {data['goal']}  ")
    lines += [(f"세션 #{data['session_id']} · 사용자 발언 {data['user_turns']}회 · "
              f"심판 판정 {data['judged_turns']}회 · 평균 설득 점수 {data['mean_score']:g}"), ""]
    lines += ["## 최종 설득 점수", "", "| 비평가 | 점수 | 해결된 반론 | 북극성 인정 |",
              "|---|---|---|---|"]
    for f in data["final"].values():
        lines.append(f"| {f['name']} | {f['score']} | {f['resolved']}/{f['objections']} | "
                     f"{'예' if f['conceded'] else '아직'} |")
    lines += ["", "## 가장 강했던 반박", ""]
    lines += _rebuttal(data["strongest"], "점수를 올린 발언이 아직 없습니다.")
    lines += ["", "## 가장 약했던 반박", ""]
    lines += _rebuttal(data["weakest"], "비교할 발언이 부족합니다 (판정된 발언이 2개 이상 필요).")
    lines += ["", "## 풀리지 않은 반론", ""]
    lines += [f"- **{o['name']}** ({o['category']}) {o['text']}" for o in data["unresolved"]] \
        or ["- 없음: 모든 반론에 답했습니다."]
    lines += ["", "## 이런 근거가 있었다면", ""]
    for e in data["evidence"]:
        lines.append(f"- **{e['name']}**: {'; '.join(e['hints'])}")
        if e["concession"]:
            lines.append(f"  - 이 비평가가 인정하는 기준: {' '.join(e['concession'].split())}")
    if not data["evidence"]:
        lines.append("- 남은 반론이 없습니다.")
    lines += ["", "## 다음 토론 숙제", ""]
    lines += [f"{i}. {item}" for i, item in enumerate(data["homework"], 1)] \
        or ["1. 같은 북극성으로 더 까다로운 비평가를 불러 보세요."]
    return "\n".join(lines) + "\n"


def _rebuttal(turn: dict | None, empty: str) -> list[str]:
    if not turn:
        return [empty]
    sign = "+" if turn["delta"] > 0 else ""
    lines = [f"> {turn['quote']}", "", f"이 발언 뒤 평균 점수 {sign}{turn['delta']:g}"]
    if turn["resolved"]:
        lines[-1] += f", 풀린 반론: {', '.join(turn['resolved'])}"
    return lines


def write_review(store: Store, session_id: int, personas: dict[str, Persona]):
    """Compute, render and save the review; returns the stored Review row."""
    data = build_review(store, session_id, personas)
    return store.save_review(session_id, render_markdown(data), data)


def goal_progress(store: Store, goal_id: int, personas: dict[str, Persona]) -> list[dict]:
    """One row per session on the goal, oldest first: final mean score and objections resolved."""
    rows = []
    for chat in store.goal_sessions(goal_id):
        ledger = ledger_from(store.judgements(chat.id), chat.personas, personas)
        entries = list(ledger.values())
        rows.append({
            "session_id": chat.id, "title": chat.title,
            "date": chat.created_at.strftime("%Y-%m-%d"),
            "critics": ", ".join(personas[p].name if p in personas else p for p in chat.personas),
            "mean_score": round(sum(e.score for e in entries) / len(entries), 1) if entries else 0,
            "resolved": sum(o.resolved for e in entries for o in e.objections),
            "objections": sum(len(e.objections) for e in entries),
            "conceded": sum(concession_due(e) for e in entries),
        })
    return rows


def goal_update(evidence: str, data: dict) -> str | None:
    """The goal's evidence with the rebuttals the critics accepted added (None: nothing new)."""
    new = [f"- {t['quote']}" for t in data.get("accepted", []) if t["quote"] not in evidence]
    if not new:
        return None
    return "\n".join(part for part in (evidence.rstrip(), *new) if part)

