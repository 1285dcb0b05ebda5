"""The review beside the chat: write it, read it, download it as Markdown, carry what the
critics accepted into the North Star, start the next session on the same goal, and see the
progress across sessions on that goal."""

import re

import pandas as pd
import streamlit as st

from chatbot.engine import ChatEngine
from chatbot.models import ChatSession
from chatbot.review import goal_progress, goal_update, write_review


def render(engine: ChatEngine, chat: ChatSession) -> None:
    store = engine.store
    review = store.latest_review(chat.id)
    with st.expander("📝 토론 리뷰", expanded=review is not None):
        # a callback runs before this script: the label and the expander already see the review
        st.button("토론 마치고 리뷰 만들기" if review is None else "리뷰 다시 만들기",
                  key=f"make_review_{chat.id}", use_container_width=True,
                  on_click=write_review, args=(store, chat.id, engine.personas))
        if review is None:
            st.caption("가장 강했던/약했던 반박, 남은 반론, 다음 숙제를 정리해 드립니다.")
        else:
            st.markdown(shown(review.markdown))
            st.download_button("Markdown으로 내려받기", review.markdown,
                               file_name=f"polaris-review-{chat.id}.md", mime="text/markdown",
                               key=f"download_review_{chat.id}")
            if chat.goal_id is not None:
                _goal_actions(engine, chat, review.data)
    if chat.goal_id is not None:
        render_progress(engine, chat.goal_id)


def shown(markdown: str) -> str:
    """The review for the page: its headings three levels down, so its title fits the side
    column and sits below the page's own headings (the download keeps the Markdown as is)."""
    return re.sub(r"^(#{1,3}) ", lambda m: "#" * (len(m.group(1)) + 3) + " ", markdown,
                  flags=re.MULTILINE)


def _goal_actions(engine: ChatEngine, chat: ChatSession, data: dict) -> None:
    left, right = st.columns(2)
    if left.button("북극성에 반영", key=f"goal_from_review_{chat.id}",
                   help="비평가들이 받아들인 반박을 북극성의 근거에 더합니다."):
        goal = engine.store.get_goal(chat.goal_id)
        evidence = goal_update(goal.evidence, data)
        if evidence is None:
            st.info("더할 새 근거가 없습니다.")
        else:
            engine.store.update_goal(goal.id, evidence=evidence)
            st.success("북극성의 근거를 고쳤습니다. 다음 토론의 비평가들이 읽습니다.")
    if right.button("같은 북극성으로 새 토론", key=f"next_session_{chat.id}"):
        new = engine.start_session(list(chat.personas), backend=chat.backend, model=chat.model,
                                   strategy=chat.strategy, goal_id=chat.goal_id,
                                   turn_order=chat.turn_order)
        st.session_state.session_id = new.id
        st.rerun()


def render_progress(engine: ChatEngine, goal_id: int) -> None:
    """Sessions on this goal, oldest first, with the critics' mean score after each."""
    rows = goal_progress(engine.store, goal_id, engine.personas)
    if len(rows) < 2:
        return
    st.markdown("**📈 이 북극성의 진행**")
    frame = pd.DataFrame(rows)
    st.line_chart(frame.set_index("session_id")["mean_score"], x_label="세션",
                  y_label="평균 설득 점수", height=180)
    st.dataframe(frame.rename(columns={
        "session_id": "세션", "title": "제목", "date": "날짜", "critics": "비평가",
        "mean_score": "평균 점수", "resolved": "해결된 반론", "objections": "반론",
        "conceded": "인정한 비평가"}), hide_index=True, use_container_width=True)
