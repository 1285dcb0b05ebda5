"""Process-wide objects for the UI: one engine per configuration, backend health."""

import streamlit as st

from chatbot.engine import ChatEngine
from serving.backend import available_backends
from serving.errors import InvalidInput, PolarisError
from serving.settings import Settings, load_settings
from serving.types import Health

AVATARS = {
    "team-lead": "📊",
    "retired-developer": "🧓",
    "pessimistic-jobseeker": "😮‍💨",
    "late-relative": "👵",
    "calm-realist": "🍵",
}
STRATEGY_LABELS = {
    "plain": "plain · 질문만",
    "system": "system · 페르소나 지시문",
    "fewshot": "fewshot · 지시문 + 예시 대화",
    "finetuned": "finetuned · 튜닝된 페르소나 모델",
}
USER_BACKENDS = ("embedded", "ollama", "openai")


def settings() -> Settings:
    try:
        return load_settings()
    except InvalidInput as exc:
        st.error(f"설정 오류 — {exc}. 환경 변수나 .env 파일을 고쳐 주세요.")
        st.stop()


@st.cache_resource(show_spinner=False)
def _engine(settings_json: str) -> ChatEngine:
    return ChatEngine(Settings.model_validate_json(settings_json))


def engine() -> ChatEngine:
    """The engine for the current settings (cached: models load once per process)."""
    current = settings()
    try:
        return _engine(current.model_dump_json())
    except PolarisError as exc:
        st.error(f"시작할 수 없습니다: {exc}")
        st.stop()


def backend_choices() -> list[str]:
    """The user-facing backends, plus any registered by tests or plugins."""
    return [*USER_BACKENDS, *(k for k in available_backends() if k not in USER_BACKENDS)]


@st.cache_data(ttl=10, show_spinner=False)
def health(settings_json: str, kind: str, model: str) -> tuple[Health, list[str]]:
    """Backend health and its model names, re-checked at most every 10 s."""
    current = _engine(settings_json)
    try:
        backend = current.backend(kind, model or None)
        status = backend.health()
        names = [m.name for m in backend.models()] if status.ok else []
    except Exception as exc:  # noqa: BLE001 - health must never break the page
        return Health(False, kind, str(exc)), []
    return status, names


def avatar(persona_id: str | None) -> str:
    return AVATARS.get(persona_id or "", "🗣️")
