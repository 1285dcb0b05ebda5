"""Download the selected session as Markdown or JSON (chatbot/export.py)."""

from collections.abc import Callable
from dataclasses import dataclass

import streamlit as st

from chatbot.engine import ChatEngine
from chatbot.export import session_json, session_markdown
from chatbot.models import ChatSession


@dataclass(frozen=True)
class Download:
    key: str
    label: str
    file_name: str
    mime: str
    data: Callable[[], str]  # built only when the user clicks


def file_name(chat: ChatSession, extension: str) -> str:
    """ASCII only: the id names the session, the start date tells exports apart at a glance."""
    return f"polaris-session-{chat.id}-{chat.created_at:%Y-%m-%d}.{extension}"


def downloads(engine: ChatEngine, chat: ChatSession) -> list[Download]:
    store, session_id = engine.store, chat.id
    return [
        Download(f"export_md_{session_id}", "Markdown으로 내보내기", file_name(chat, "md"),
                 "text/markdown", lambda: session_markdown(store, session_id, engine.personas)),
        Download(f"export_json_{session_id}", "JSON으로 내보내기", file_name(chat, "json"),
                 "application/json", lambda: session_json(store, session_id)),
    ]


def render(engine: ChatEngine, chat: ChatSession) -> None:
    """Two download buttons. `data` is a callable, so Streamlit builds the file on the click
    (in its own thread) instead of on every rerun; "ignore" keeps the click from rerunning."""
    st.caption("내보내기")
    for item in downloads(engine, chat):
        st.download_button(item.label, data=item.data, file_name=item.file_name, mime=item.mime,
                           key=item.key, on_click="ignore", icon=":material/download:",
                           width="stretch")
