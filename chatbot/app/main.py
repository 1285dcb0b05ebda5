"""Streamlit entry point: `polaris run` (or `streamlit run chatbot/app/main.py`)."""

from pathlib import Path

import streamlit as st

PAGES = Path(__file__).parent / "pages"

st.set_page_config(page_title="Polaris 북극성", page_icon="⭐", layout="wide")
navigation = st.navigation([
    st.Page(PAGES / "chat.py", title="토론", icon="💬", default=True),
    st.Page(PAGES / "compare.py", title="비교", icon="⚖️"),
    st.Page(PAGES / "progress.py", title="북극성 진행", icon="📈"),
    st.Page(PAGES / "personas.py", title="비평가 소개", icon="🎭"),
])
navigation.run()
