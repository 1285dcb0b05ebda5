import streamlit as st

from chatbot.app import context

st.header("비평가 소개")
st.caption("토론에서 만날 사람들입니다. 각자 무엇을 의심하고, 무엇을 보면 인정하는지 확인하세요.")
for persona in context.engine().personas.values():
    with st.container(border=True):
        st.subheader(f"{context.avatar(persona.id)} {persona.name}")
        st.markdown(f"**누구인가** {persona.role}")
        st.markdown(f"**무엇을 의심하나** {persona.stance}")
        st.markdown(f"**무엇이 설득하나** {persona.concession}")
        st.caption(f"말투: {persona.speech} · 톤: {persona.tone} · id: `{persona.id}`")
        with st.expander("예시 대화"):
            for example in persona.examples:
                st.text(f"나: {example.user}\n{persona.name}: {example.assistant}")
