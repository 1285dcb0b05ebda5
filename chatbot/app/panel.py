"""Panel settings for the open session: turn order and each critic's tone, model, strategy."""

import streamlit as st

from chatbot import debate
from chatbot.engine import ChatEngine
from chatbot.models import ChatSession
from serving.settings import STRATEGIES


def judge_on(engine: ChatEngine) -> bool:
    """The 심판 판정 toggle: the user's choice once made, else the settings' default."""
    return st.session_state.get("judge_on", engine.settings.judge_default())


def render(engine: ChatEngine, chat: ChatSession) -> ChatSession:
    """Draw the settings; changes are saved at once. Returns the session as saved."""
    with st.expander("⚙️ 패널 설정"):
        orders = list(debate.TURN_ORDERS)
        order = st.radio("답하는 순서", orders, index=orders.index(chat.turn_order),
                         format_func=debate.TURN_ORDERS.get, horizontal=True,
                         key=f"turn_order_{chat.id}")
        st.caption("메시지에 `@이름`(예: `@팀장님`)을 넣으면 그 비평가만 답합니다.")
        st.toggle("심판 판정 (설득 미터)", value=engine.settings.judge_default(), key="judge_on",
                  help="끄면 점수와 반론 기록 없이 대화만 합니다 (느린 컴퓨터에서 빠름). 기본 "
                       "내장 모델(270M)은 판정을 하지 못해 꺼 두었습니다: POLARIS_JUDGE_BACKEND와 "
                       "POLARIS_JUDGE_MODEL로 더 큰 심판 모델을 지정하세요.")
        settings = chat.critic_settings or {}
        for pid in chat.personas:
            persona = engine.personas.get(pid)
            if persona is None:
                continue
            st.markdown(f"**{persona.name}**")
            tone = st.selectbox(
                "말투", ["", *debate.TONES], key=f"tone_{chat.id}_{pid}",
                index=["", *debate.TONES].index(debate.critic_option(chat, pid, "tone") or ""),
                format_func=lambda t, p=persona: (f"카드 기본 ({p.tone})" if not t
                                                  else debate.TONE_LABELS[t]))
            strategy = st.selectbox(
                "전략", ["", *STRATEGIES], key=f"strategy_{chat.id}_{pid}",
                index=["", *STRATEGIES].index(debate.critic_option(chat, pid, "strategy") or ""),
                format_func=lambda s: f"대화 기본 ({chat.strategy})" if not s else s)
            model = st.text_input("모델", value=debate.critic_option(chat, pid, "model") or "",
                                  placeholder=f"대화 기본 ({chat.model})",
                                  key=f"model_{chat.id}_{pid}")
            for key, value in (("tone", tone), ("strategy", strategy), ("model", model.strip())):
                settings = debate.with_critic_option(settings, pid, key, value)
    if order != chat.turn_order or settings != (chat.critic_settings or {}):
        chat = engine.store.update_session(chat.id, turn_order=order, critic_settings=settings)
    return chat
