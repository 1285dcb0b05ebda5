import streamlit as st

from chatbot.app import context, review_view
from chatbot.review import goal_progress

st.header("북극성 진행")
st.caption("같은 북극성으로 한 토론들을 모아, 세션마다 비평가들이 얼마나 설득되었는지 봅니다.")
engine = context.engine()
goals = engine.store.list_goals()
if not goals:
    st.info("아직 북극성이 없습니다. 토론 화면에서 북극성을 적고 토론을 시작하세요.")
    st.stop()
titles = {g.id: g.title for g in goals}
goal_id = st.selectbox("북극성", list(titles), format_func=titles.get, key="progress_goal")
goal = engine.store.get_goal(goal_id)
with st.container(border=True):
    st.markdown(f"**🧭 {goal.title}**")
    for label, value in (("설명", goal.description), ("제약", goal.constraints),
                         ("근거", goal.evidence)):
        if value.strip():
            st.markdown(f"**{label}**")
            st.text(value)
rows = goal_progress(engine.store, goal_id, engine.personas)
if len(rows) >= 2:
    review_view.render_progress(engine, goal_id)
else:
    st.caption(f"이 북극성의 토론: {len(rows)}회. 두 번 이상 토론하면 진행 그래프가 나옵니다.")
for row in reversed(rows):
    review = engine.store.latest_review(row["session_id"])
    with st.expander(f"#{row['session_id']} {row['title']} · {row['date']} · "
                     f"평균 {row['mean_score']:g}점"):
        if review is None:
            st.caption("리뷰가 아직 없습니다: 토론 화면에서 '토론 마치고 리뷰 만들기'를 누르세요.")
        else:
            st.markdown(review_view.shown(review.markdown))
