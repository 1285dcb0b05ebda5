"""The debate page: start a session (goal card + critics), then chat with streaming replies."""

import time
from collections.abc import Iterable, Iterator

import streamlit as st

from chatbot import debate
from chatbot.app import context, meter, panel, review_view
from chatbot.engine import ChatEngine
from chatbot.models import ChatMessage
from serving.errors import PolarisError
from serving.prompting import GoalCard

MAX_CRITICS = 4


def render_new_session(engine: ChatEngine) -> None:
    st.header("새 토론 시작")
    st.caption("당신의 북극성(목표)을 적고, 설득할 비평가를 고르세요.")
    personas = engine.personas
    goals = {g.id: g.title for g in engine.store.list_goals()}
    with st.form("new_session_form"):
        goal_id = st.selectbox(
            "이어갈 북극성", [None, *goals], key="new_goal",
            format_func=lambda g: "새 북극성 쓰기" if g is None else f"🧭 {goals[g]}",
            help="이전 토론의 북극성을 고르면 그 목표의 진행이 이어서 기록됩니다.",
        ) if goals else None
        title = st.text_input("북극성 · 이루고 싶은 목표", placeholder="예: 회사를 그만두고 창업하기")
        description = st.text_area("왜 이 목표인가요?", height=80)
        constraints = st.text_area("제약 (돈, 시간, 가족…)", height=68)
        evidence = st.text_area("근거 (숫자, 경험, 이미 한 일)", height=68)
        chosen = st.multiselect(
            "비평가 (최대 4명)", list(personas), default=[next(iter(personas))],
            format_func=lambda pid: f"{context.avatar(pid)} {personas[pid].name}",
            max_selections=MAX_CRITICS, key="new_personas",
        )
        turn_order = st.radio("답하는 순서", list(debate.TURN_ORDERS), horizontal=True,
                              format_func=debate.TURN_ORDERS.get, key="new_turn_order")
        submitted = st.form_submit_button("토론 시작", type="primary")
    if not submitted:
        return
    if not chosen:
        st.error("비평가를 한 명 이상 고르세요.")
        return
    state = st.session_state
    try:
        chat = engine.start_session(
            chosen, backend=state.get("backend"), model=state.get("model") or None,
            strategy=state.get("strategy"),
            goal=GoalCard(title, description, constraints, evidence) if title.strip() else None,
            goal_id=goal_id, turn_order=turn_order,
        )
    except (PolarisError, ValueError) as exc:
        st.error(f"대화를 시작할 수 없습니다: {exc}")
        return
    state.session_id = chat.id
    st.rerun()


RECENT = 20  # messages drawn at first (a couple of screens): each costs the browser ~8 ms


def _visible(store, session_id: int, total: int) -> list:
    """The latest RECENT messages, read from the database alone, with a button that grows the
    window by RECENT at a time (a 500-message session otherwise takes seconds to draw)."""
    key = f"shown_{session_id}"
    shown = st.session_state.get(key, RECENT)
    hidden = total - shown
    if hidden > 0 and st.button(f"이전 메시지 {min(hidden, RECENT)}개 더 보기 (숨김 {hidden}개)",
                                key=f"more_{session_id}"):
        st.session_state[key] = shown + RECENT
        st.rerun()
    return store.messages(session_id, last=shown if hidden > 0 else None)


def render_session(engine: ChatEngine, session_id: int) -> None:
    chat = engine.store.get_session(session_id)
    personas = engine.personas
    st.header(chat.title)
    names = ", ".join(f"{context.avatar(p)} {personas[p].name}" for p in chat.personas
                      if p in personas)
    st.caption(f"{names} · {chat.backend} / {chat.model} · {chat.strategy}")
    _goal_card(engine, chat.goal_id, session_id)
    chat_column, side = st.columns([3, 2], gap="medium")
    with side:
        meter_slot = st.empty()
        with meter_slot.container():
            meter.render(engine, chat)
        chat = panel.render(engine, chat)
        review_view.render(engine, chat)
    total = engine.store.count_messages(session_id)
    with chat_column:
        if not total:
            for pid in chat.personas:
                if pid in personas:
                    with st.chat_message("assistant", avatar=context.avatar(pid)):
                        st.markdown(f"**{personas[pid].name}**")
                        st.text(personas[pid].greeting)
        for message in _visible(engine.store, session_id, total):
            _show(message, personas)

    state = st.session_state
    if failure := state.pop("reply_failure", None):  # set before the rerun that redrew the page
        st.error(failure)
    if warning := state.pop("judge_failure", None):
        st.warning(warning)
    if state.get("stop_button"):  # the click that stopped the last reply
        st.info("답변을 중지했습니다. 중단된 답변은 저장되어 있습니다.")
    text = st.chat_input("비평가에게 할 말을 입력하세요 (@이름: 한 명에게만)")
    if text:
        try:
            user = engine.send(session_id, text)
        except (PolarisError, ValueError) as exc:
            st.error(f"{exc}")
            return
        with chat_column:
            _show(user, personas)
        if panel.judge_on(engine):
            _judge(engine, session_id, meter_slot)
        turn = engine.store.count_messages(session_id, role="user")
        with chat_column:
            _stream_replies(engine, session_id, debate.speakers(chat, text, personas, turn))
        st.rerun()
    elif total and st.button("↻ 다시 생성", key="regenerate"):
        with chat_column:
            _stream_replies(engine, session_id,
                            debate.last_turn_speakers(engine.store, chat, personas),
                            regenerate=True)
        st.rerun()


def _judge(engine: ChatEngine, session_id: int, meter_slot) -> None:
    """Judge the user's message before the critics answer, and move the meter at once."""
    try:
        with st.spinner("심판이 판정하는 중…"):
            debate.judge_turn(engine, session_id)
    except (PolarisError, ValueError) as exc:
        st.session_state.judge_failure = (
            f"심판이 이번 발언을 판정하지 못했습니다 (점수는 그대로입니다): {exc}")
        return
    with meter_slot.container():
        meter.render(engine, engine.store.get_session(session_id))


def _stream_replies(engine: ChatEngine, session_id: int, persona_ids: list[str],
                    regenerate: bool = False) -> None:
    """Each critic answers in turn; a stop button interrupts the one speaking."""
    stop = st.empty()
    stop.button("⏹ 중지", key="stop_button")
    for i, pid in enumerate(persona_ids):
        persona = engine.persona(pid)
        with st.chat_message("assistant", avatar=context.avatar(pid)):
            st.markdown(f"**{persona.name}**")
            stream = None
            try:
                stream = (engine.regenerate(session_id, pid) if regenerate and i == 0
                          else engine.reply(session_id, pid))
                st.write_stream(paced(stream))
            except (PolarisError, ValueError) as exc:
                if stream is None or stream.outcome is None:
                    # nothing reached the DB, so the page redrawn by st.rerun() cannot show it
                    st.session_state.reply_failure = f"{persona.name}의 답변을 받지 못했습니다: {exc}"
                break
    stop.empty()


def paced(pieces: Iterable[str], every_s: float = 0.05) -> Iterator[str]:
    """Hand Streamlit the text at most every `every_s`: each write re-renders the whole
    message, and doing that per token costs the model a third of its speed on a small CPU."""
    source = iter(pieces)
    buffer: list[str] = []
    last = time.monotonic()
    try:
        for piece in source:
            buffer.append(piece)
            if time.monotonic() - last >= every_s:
                yield "".join(buffer)
                buffer.clear()
                last = time.monotonic()
        if buffer:
            yield "".join(buffer)
    finally:
        if hasattr(source, "close"):  # a stop or rerun closes us: close the reply too,
            source.close()  # so the partial reply is saved now, not whenever GC runs


def _show(message: ChatMessage, personas: dict) -> None:
    if message.role == "user":
        with st.chat_message("user", avatar="🧭"):
            st.text(message.content)
        return
    persona = personas.get(message.persona or "")
    with st.chat_message("assistant", avatar=context.avatar(message.persona)):
        # name, reply and stats in one element: the browser's cost grows with the element count
        parts = [f"**{persona.name if persona else message.persona}**"]
        if message.content:
            # an unclosed code fence (a reply cut off mid-code) would swallow the stats line
            fence = "\n```" if message.content.count("```") % 2 else ""
            parts.append(message.content + fence)
        if message.tokens:
            ttft = f"{message.ttft_s:.2f}s" if message.ttft_s else "-"
            rate = f"{message.tok_per_s:.1f} tok/s" if message.tok_per_s else "-"
            parts.append(f":small[:gray[{message.tokens} tokens · 첫 토큰 {ttft} · {rate}]]")
        st.markdown("\n\n".join(parts))
        if message.status == "error":
            st.error(f"답변을 받지 못했습니다: {message.error}")
        elif message.status == "interrupted" and message.error:
            st.error(f"중단된 답변 — 답변이 중간에 끊겼습니다: {message.error}", icon="⚠️")
        elif message.status == "interrupted":
            st.caption("⚠️ 중단된 답변 (중지됨)")


def _goal_card(engine: ChatEngine, goal_id: int | None, session_id: int) -> None:
    goal = engine.store.get_goal(goal_id) if goal_id else None
    with st.expander(f"🧭 북극성: {goal.title}" if goal else "🧭 북극성 (아직 없음)"):
        with st.form(f"goal_form_{session_id}"):
            title = st.text_input("목표", value=goal.title if goal else "")
            description = st.text_area("설명", value=goal.description if goal else "")
            constraints = st.text_area("제약", value=goal.constraints if goal else "")
            evidence = st.text_area("근거", value=goal.evidence if goal else "")
            if not st.form_submit_button("북극성 저장"):
                return
        try:
            if goal:
                engine.store.update_goal(goal.id, title=title, description=description,
                                         constraints=constraints, evidence=evidence)
            else:
                new = engine.store.create_goal(title, description, constraints, evidence)
                engine.store.update_session(session_id, goal_id=new.id)
        except ValueError as exc:
            st.error(f"{exc}")
            return
        st.rerun()
