"""비교: one message over models × strategies side by side, with notes, saved and exportable."""

import streamlit as st

from chatbot.app import context
from chatbot.app.chat_view import paced
from chatbot.compare import Comparer, answer_label, export_comparison, file_text, parse_targets
from chatbot.engine import ChatEngine
from chatbot.models import ComparisonAnswer
from serving.errors import PolarisError
from serving.settings import STRATEGIES

STUDY_QUESTION = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."


@st.cache_resource(show_spinner=False)
def _comparer(settings_json: str, _engine: ChatEngine) -> Comparer:
    return Comparer(_engine.settings, store=_engine.store, personas=_engine.personas)


def _sidebar(comparer: Comparer) -> None:
    state = st.session_state
    with st.sidebar:
        st.title("⚖️ 비교")
        if st.button("＋ 새 비교", use_container_width=True, key="new_comparison"):
            state.comparison_id = None
        past = comparer.store.list_comparisons()
        ids = [c.id for c in past]
        if state.get("comparison_id") not in ids:
            state.comparison_id = None
        if not past:
            st.caption("아직 비교가 없습니다.")
            return
        labels = {c.id: f"#{c.id} {_persona_name(comparer, c.persona)} · "
                        f"{_short(c.title or c.question)}" for c in past}
        picked = st.radio("지난 비교", ids,
                          index=ids.index(state.comparison_id) if state.comparison_id else None,
                          format_func=lambda i: labels[i], key=f"pick_cmp_{state.comparison_id}")
        if picked is not None and picked != state.comparison_id:
            state.comparison_id = picked
            st.rerun()
        if state.comparison_id is not None:
            with st.expander("비교 관리"):
                confirm = st.checkbox("삭제를 확인합니다", key="confirm_delete_comparison")
                if st.button("비교 삭제", disabled=not confirm, type="primary",
                             key="delete_comparison"):
                    comparer.store.delete_comparison(state.comparison_id)
                    state.comparison_id = None
                    st.rerun()


def _persona_name(comparer: Comparer, persona_id: str) -> str:
    persona = comparer.personas.get(persona_id)
    return persona.name if persona else persona_id


def _short(text: str, limit: int = 24) -> str:
    line = text.splitlines()[0] if text else ""
    return line if len(line) <= limit else line[: limit - 1] + "…"


def _form(comparer: Comparer) -> None:
    """The new-comparison form; on submit the comparison is stored and its answers run."""
    settings = comparer.settings
    personas = comparer.personas
    with st.form("compare_form"):
        persona_id = st.selectbox(
            "비평가", list(personas), key="compare_persona",
            format_func=lambda pid: f"{context.avatar(pid)} {personas[pid].name}")
        question = st.text_area("보낼 메시지", value=STUDY_QUESTION, key="compare_question",
                                height=80)
        backends = context.backend_choices()
        backend = st.selectbox(
            "백엔드", backends, key="compare_backend",
            index=backends.index(settings.backend) if settings.backend in backends else 0)
        models = st.text_input(
            "모델 (쉼표로 구분)", value=settings.model, key="compare_models",
            help="다른 백엔드의 모델은 backend:model 로 적습니다. 예: ollama:gemma3-critic")
        strategies = st.multiselect(
            "프롬프트 전략", list(STRATEGIES), default=list(STRATEGIES), key="compare_strategies",
            format_func=lambda s: context.STRATEGY_LABELS.get(s, s))
        submitted = st.form_submit_button("비교 실행", type="primary")
    if not submitted:
        return
    if not strategies:
        st.error("프롬프트 전략을 하나 이상 고르세요.")
        return
    try:
        comparison = comparer.start(persona_id, question, parse_targets(models, backend),
                                    strategies)
    except (PolarisError, ValueError) as exc:
        st.error(f"비교를 시작할 수 없습니다: {exc}")
        return
    st.session_state.comparison_id = comparison.id
    st.session_state.run_comparison = True
    st.rerun()


def _save_notes(comparer: Comparer, answer_id: int) -> None:
    comparer.set_notes(answer_id, st.session_state[f"note_{answer_id}"])


def _cell(comparer: Comparer, answer: ComparisonAnswer, row_label: str):
    """One answer in the grid; returns the placeholder its text streams into."""
    with st.container(border=True):
        st.markdown(f"**{context.STRATEGY_LABELS.get(answer.strategy, answer.strategy)}**")
        if answer_label(answer) != row_label:
            st.caption(answer_label(answer))
        body = st.empty()
        if answer.status == "pending":
            body.caption("생성 대기 중…")
        elif answer.answer:
            body.markdown(answer.answer)
        if answer.status == "error":
            st.error(f"답변을 받지 못했습니다: {answer.error}")
        elif answer.status == "interrupted":
            st.caption(f"⚠️ 중단된 답변{f' — {answer.error}' if answer.error else ''}")
        if answer.tokens:
            ttft = f"{answer.ttft_s:.2f}s" if answer.ttft_s else "-"
            rate = f"{answer.tok_per_s:.1f} tok/s" if answer.tok_per_s else "-"
            st.caption(f"{answer.tokens} tokens · 첫 토큰 {ttft} · {rate}")
        key = f"note_{answer.id}"
        if key not in st.session_state:
            st.session_state[key] = answer.notes
        st.text_area("메모", key=key, height=68, on_change=_save_notes,
                     args=(comparer, answer.id), placeholder="이 답변에 대한 평가")
    return body


def _comparison(comparer: Comparer, comparison_id: int) -> None:
    comparison = comparer.store.get_comparison(comparison_id)
    answers = comparer.store.comparison_answers(comparison_id)
    st.subheader(f"#{comparison.id} · {context.avatar(comparison.persona)} "
                 f"{_persona_name(comparer, comparison.persona)}")
    st.markdown(f"> {comparison.question}")
    strategies = list(dict.fromkeys(a.strategy for a in answers)) or ["-"]
    width = len(strategies)
    bodies: dict[int, object] = {}
    for start in range(0, len(answers), width):
        row = answers[start:start + width]
        row_label = answer_label(next((a for a in row if not a.adapter), row[0]))
        st.markdown(f"#### {row_label}")
        for column, answer in zip(st.columns(width), row, strict=False):
            with column:
                bodies[answer.id] = _cell(comparer, answer, row_label)

    pending = [a for a in answers if a.status == "pending"]
    state = st.session_state
    run_now = state.pop("run_comparison", False)
    if pending and not run_now:
        run_now = st.button(f"▶ 남은 답변 {len(pending)}개 생성", key="run_pending")
    if pending and run_now:
        stop = st.empty()
        stop.button("⏹ 중지", key="stop_comparison")
        for answer in pending:
            stream = comparer.stream(answer)
            with bodies[answer.id].container():
                st.write_stream(paced(stream))
        stop.empty()
        st.rerun()

    name = f"polaris-compare-{comparison.id}"
    personas = comparer.personas
    left, right = st.columns(2)
    left.download_button(
        "Markdown 내려받기", export_comparison(comparer.store, comparison.id, "md", personas),
        file_name=f"{name}.md", mime="text/markdown", key="download_md")
    right.download_button(
        "CSV 내려받기",
        file_text(export_comparison(comparer.store, comparison.id, "csv"), "csv").encode(),
        file_name=f"{name}.csv", mime="text/csv", key="download_csv")


engine = context.engine()
comparer = _comparer(engine.settings.model_dump_json(), engine)
_sidebar(comparer)
st.header("비교 모드")
st.caption("같은 메시지를 여러 모델과 프롬프트 전략으로 보내 답을 나란히 봅니다. "
           "답마다 메모를 남기고, 표를 Markdown이나 CSV로 내려받으세요.")
selected = st.session_state.get("comparison_id")
if selected is None:
    _form(comparer)
else:
    with st.expander("새 비교 만들기"):
        _form(comparer)
    _comparison(comparer, selected)
