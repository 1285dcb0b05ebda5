"""Sidebar: sessions (new, resume, rename, delete) and the model picker with health."""

from collections import Counter

import streamlit as st

from chatbot.app import context, export_view
from chatbot.engine import ChatEngine
from chatbot.models import ChatSession
from serving.settings import STRATEGIES


def render(engine: ChatEngine) -> int | None:
    """Draw the sidebar; returns the selected session id (None: start a new one)."""
    state = st.session_state
    if "session_id" not in state:  # a new browser session: resume what the URL names
        state.session_id = _session_from_url()
    with st.sidebar:
        st.title("⭐ Polaris 북극성")
        if st.button("＋ 새 대화", use_container_width=True, key="new_session"):
            state.session_id = None
        sessions = engine.store.list_sessions()
        ids = [s.id for s in sessions]
        if state.session_id not in ids:
            state.session_id = None
        if sessions:
            labels = _labels(sessions)
            # The server states the selection on every run. Left to the radio, a browser that
            # already drew it keeps its own choice, the old label, which a rename (or a new
            # message count) removes from the options: the list showed no session selected.
            state.session_pick = state.session_id
            st.radio("대화 목록", ids, index=None, format_func=labels.get, key="session_pick",
                     on_change=_picked)
        else:
            st.caption("아직 대화가 없습니다. 북극성을 적고 비평가를 골라 시작하세요.")
        if state.session_id is not None:
            chat = _session_actions(engine, state.session_id)
            export_view.render(engine, chat)
        _model_picker(engine)
    _session_to_url(state.session_id)
    return state.session_id


def _picked() -> None:
    st.session_state.session_id = st.session_state.session_pick


def _labels(sessions: list) -> dict[int, str]:
    """Labels "title · messages"; where two sessions share one, both get their id too: the
    radio tells its options apart by label, so the second could not be picked."""
    labels = {s.id: f"{s.title} · {s.messages}" for s in sessions}
    seen = Counter(labels.values())
    return {i: f"{label} · #{i}" if seen[label] > 1 else label for i, label in labels.items()}


def _session_from_url() -> int | None:
    value = st.query_params.get("session", "")
    return int(value) if value.isdigit() else None


def _session_to_url(session_id: int | None) -> None:
    """Keep the open session in the URL, so a reload or a shared link resumes it."""
    if session_id is None:
        st.query_params.pop("session", None)
    elif st.query_params.get("session") != str(session_id):
        st.query_params["session"] = str(session_id)


def _session_actions(engine: ChatEngine, session_id: int) -> ChatSession:
    chat = engine.store.get_session(session_id)
    state, key = st.session_state, f"title_{session_id}"
    if key not in state or state.get(f"_{key}_shown") != chat.title:
        # a keyed widget ignores a changed value=, so refresh it when the title changes elsewhere
        # (the first message names the session); else renaming would restore the stale title
        state[key] = state[f"_{key}_shown"] = chat.title
    with st.expander("대화 관리"):
        title = st.text_input("대화 이름", key=key)
        if st.button("이름 바꾸기", key=f"rename_{session_id}"):
            try:
                engine.store.rename_session(session_id, title)
                st.rerun()
            except ValueError as exc:
                st.error(f"{exc}")
        confirm = st.checkbox("삭제를 확인합니다", key=f"confirm_delete_{session_id}")
        if st.button("대화 삭제", key=f"delete_{session_id}", disabled=not confirm, type="primary"):
            engine.store.delete_session(session_id)
            st.session_state.session_id = None
            st.rerun()
    return chat


def _model_picker(engine: ChatEngine) -> None:
    """Backend, model and strategy for new sessions (and the current one), with health."""
    state = st.session_state
    settings = engine.settings
    with st.expander("모델 설정", expanded=False):
        choices = context.backend_choices()
        default_kind = state.get("backend", settings.backend)
        kind = st.selectbox("백엔드", choices, index=_index(choices, default_kind), key="backend")
        status, names = context.health(settings.model_dump_json(), kind,
                                       settings.model if kind == settings.backend else "")
        if status.ok:
            st.success(f"연결됨 · {status.detail}")
        else:
            st.error(f"사용할 수 없음 · {status.detail}")
        default_model = settings.model if kind == settings.backend else (names[0] if names else "")
        if names:
            st.selectbox("모델", names, index=_index(names, state.get("model", default_model)),
                         key="model")
        else:
            st.text_input("모델", value=default_model, key="model")
        st.selectbox("프롬프트 전략", STRATEGIES,
                     index=STRATEGIES.index(state.get(
                         "strategy", settings.default_strategy(kind, state.get("model")))),
                     format_func=context.STRATEGY_LABELS.get, key="strategy")
        if state.get("session_id") is not None and st.button("이 대화에 적용", key="apply_model"):
            engine.store.update_session(state.session_id, backend=state.backend,
                                        model=state.model, strategy=state.strategy)
            st.rerun()


def _index(options: list[str] | tuple[str, ...], value: str | None) -> int:
    return options.index(value) if value in options else 0
