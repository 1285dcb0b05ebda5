"""The persuasion meter beside the chat: each critic's score, its objection ledger, and a
chart of the scores over the turns (all read from the judge's rows in the DB)."""

import pandas as pd
import streamlit as st

from chatbot import debate
from chatbot.app import context
from chatbot.engine import ChatEngine
from chatbot.models import ChatSession

STATE_ICONS = {"open": "🔴", "addressed": "🟡", "conceded": "🟢"}
STATE_LABELS = {"open": "미해결", "addressed": "답함", "conceded": "인정받음"}


def render(engine: ChatEngine, chat: ChatSession) -> None:
    """Draw the meter where the caller is (a column, or an st.empty's container)."""
    rows = engine.store.judgements(chat.id)
    personas = engine.personas
    st.subheader("🎯 설득 미터")
    if not rows:
        st.caption("메시지를 보내면 심판이 비평가마다 설득 점수(0–100)와 반론의 상태를 "
                   "매깁니다. 비평가는 점수를 보지 못합니다.")
    ledger = debate.ledger_from(rows, chat.personas, personas)
    for pid, entry in ledger.items():
        name = personas[pid].name if pid in personas else pid
        badge = " · 🏳️ 북극성 인정" if debate.concession_due(entry) else ""
        st.markdown(f"**{context.avatar(pid)} {name}** · {entry.score}점{badge}")
        st.progress(entry.score / 100)
        for o in entry.objections:
            reason = f" — {o.reason}" if o.reason else ""
            st.caption(f"{STATE_ICONS.get(o.state, '⚪')} {STATE_LABELS.get(o.state, o.state)}: "
                       f"{o.text}{reason}")
    history = debate.score_history(rows)
    if history:
        names = {pid: personas[pid].name if pid in personas else pid for pid in chat.personas}
        frame = pd.DataFrame(history, index=range(1, len(history) + 1)).rename(columns=names)
        frame.index.name = "턴"
        st.line_chart(frame, x_label="턴", y_label="설득 점수", height=220)
