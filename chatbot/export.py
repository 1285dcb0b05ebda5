"""A session as Markdown or JSON, for reading back or keeping."""

import json
from typing import Any

from chatbot.models import ChatMessage, ChatSession
from chatbot.store import Store
from serving.persona import Persona

STATUS_LABELS = {"interrupted": "중단됨", "error": "오류"}


def session_data(store: Store, session_id: int) -> dict[str, Any]:
    chat = store.get_session(session_id)
    goal = store.get_goal(chat.goal_id) if chat.goal_id else None
    return {
        "id": chat.id,
        "title": chat.title,
        "personas": chat.personas,
        "backend": chat.backend,
        "model": chat.model,
        "strategy": chat.strategy,
        "created_at": chat.created_at.isoformat(),
        "updated_at": chat.updated_at.isoformat(),
        "goal": goal and {
            "title": goal.title, "description": goal.description,
            "constraints": goal.constraints, "evidence": goal.evidence,
        },
        "messages": [_message(m) for m in store.messages(session_id)],
    }


def _message(m: ChatMessage) -> dict[str, Any]:
    return {
        "id": m.id, "role": m.role, "persona": m.persona, "content": m.content,
        "status": m.status, "model": m.model, "tokens": m.tokens, "ttft_s": m.ttft_s,
        "tok_per_s": m.tok_per_s, "stop_reason": m.stop_reason,
        "created_at": m.created_at.isoformat(),
    }


def session_json(store: Store, session_id: int) -> str:
    return json.dumps(session_data(store, session_id), ensure_ascii=False, indent=2) + "\n"


def session_markdown(store: Store, session_id: int, personas: dict[str, Persona]) -> str:
    chat: ChatSession = store.get_session(session_id)
    names = {pid: (personas[pid].name if pid in personas else pid) for pid in chat.personas}
    lines = [f"# {chat.title}", ""]
    lines.append(f"- 비평가: {', '.join(names.values())}")
    lines.append(f"- 모델: {chat.backend} / {chat.model} ({chat.strategy})")
    lines.append(f"- 시작: {chat.created_at:%Y-%m-%d %H:%M}")
    if chat.goal_id:
        goal = store.get_goal(chat.goal_id)
        lines += ["", "## 북극성", "", f"**{goal.title}**"]
        for label, value in (("설명", goal.description), ("제약", goal.constraints),
                             ("근거", goal.evidence)):
            if value.strip():
                lines.append(f"- {label}: {value.strip()}")
    lines += ["", "## 대화", ""]
    for m in store.messages(session_id):
        who = "나" if m.role == "user" else names.get(m.persona or "", m.persona or "비평가")
        mark = f" _({STATUS_LABELS[m.status]})_" if m.status in STATUS_LABELS else ""
        body = "\n".join(f"> {line}" if line else ">" for line in m.content.splitlines()) or ">"
        lines += [f"**{who}**{mark}", "", body, ""]
    return "\n".join(lines)
