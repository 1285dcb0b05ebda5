"""The persuasion meter beside the chat: each critic's score, its objection ledger, and a
chart of the scores over the turns (all read from the judge's rows in the DB)."""

import altair as alt
import pandas as pd
import streamlit as st

from chatbot import debate
from chatbot.app import context, panel
from chatbot.engine import ChatEngine
from chatbot.models import ChatSession
from serving.judge import INITIAL_SCORE

STATE_ICONS = {"open": "🔴", "addressed": "🟡", "conceded": "🟢"}
STATE_LABELS = {"open": "미해결", "addressed": "답함", "conceded": "인정받음"}
OFF_NOTE = ("심판 판정이 꺼져 있습니다: 점수와 반론 기록 없이 대화만 합니다. 기본 내장 모델(270M)은 "
            "판정을 하지 못해 꺼 두었습니다. ⚙️ 패널 설정에서 켜거나, POLARIS_JUDGE_BACKEND와 "
            "POLARIS_JUDGE_MODEL로 더 큰 심판 모델을 지정하세요.")


def render(engine: ChatEngine, chat: ChatSession) -> None:
    """Draw the meter where the caller is (a column, or an st.empty's container)."""
    rows = engine.store.judgements(chat.id)
    personas = engine.personas
    st.subheader("🎯 설득 미터")
    if not panel.judge_on(engine):
        st.caption(OFF_NOTE if not rows else "심판 판정이 꺼져 있어 점수가 더 이상 바뀌지 "
                   "않습니다. ⚙️ 패널 설정에서 켤 수 있습니다.")
    elif not rows:
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
        st.altair_chart(score_chart(history, {pid: personas[pid].name if pid in personas
                                              else pid for pid in chat.personas}),
                        width="stretch")


def score_chart(history: list[dict[str, int]], names: dict[str, str]) -> alt.LayerChart:
    """Scores per turn on a fixed 0–100 scale from turn 0 (the start, everyone at 0), with the
    concession bar: a one-turn debate still draws a line, and the axis never rescales."""
    start = {pid: INITIAL_SCORE for pid in names}
    frame = pd.DataFrame([start, *history]).rename(columns=names)
    frame.index.name = "턴"
    data = frame.reset_index().melt("턴", var_name="비평가", value_name="설득 점수").dropna()
    lines = alt.Chart(data).mark_line(point=True).encode(
        x=alt.X("턴:O", axis=alt.Axis(labelAngle=0)),
        y=alt.Y("설득 점수:Q", scale=alt.Scale(domain=[0, 100])),
        color=alt.Color("비평가:N", legend=alt.Legend(orient="bottom", title=None)))
    bar = alt.Chart(pd.DataFrame({"설득 점수": [debate.CONCEDE_AT]})).mark_rule(
        strokeDash=[4, 4], color="gray").encode(y="설득 점수:Q")
    return (lines + bar).properties(height=220)
