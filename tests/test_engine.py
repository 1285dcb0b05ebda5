import threading

import pytest

from chatbot.engine import MAX_USER_CHARS, ChatEngine, clean_user_text
from serving.errors import BackendError
from serving.persona import PersonaError
from serving.prompting import GoalCard
from tests.scripted import ScriptedBackend


@pytest.fixture
def engine(settings):
    return ChatEngine(settings)


def use(engine: ChatEngine, backend: ScriptedBackend) -> ScriptedBackend:
    engine._backend_factory = lambda kind, settings, model: backend
    engine._backends.clear()
    return backend


def start(engine, personas=("team-lead",), **kw):
    return engine.start_session(list(personas), backend="scripted", **kw)


def test_user_message_is_committed_before_generation_starts(engine):
    seen = []
    backend = use(engine, ScriptedBackend(["숫자로 보면요?"]))
    chat = start(engine)
    # the backend looks at the DB from its own connection when the request arrives
    backend.on_request = lambda _: seen.extend(
        (m.role, m.content, m.status) for m in engine.store.messages(chat.id))
    engine.send(chat.id, "회사를 그만두고 창업할래요")
    assert "".join(engine.reply(chat.id)) == "숫자로 보면요?"
    assert seen[0] == ("user", "회사를 그만두고 창업할래요", "complete")
    messages = engine.store.messages(chat.id)
    assert [(m.role, m.status) for m in messages] == [("user", "complete"), ("assistant", "complete")]
    assert messages[1].persona == "team-lead" and messages[1].tokens == 2
    assert messages[1].stop_reason == "stop" and messages[1].model == "script"


def test_reply_failing_mid_stream_keeps_both_messages(engine):
    use(engine, ScriptedBackend(["하나 둘 셋 넷"], fail_after=2))
    chat = start(engine)
    engine.send(chat.id, "들어보세요")
    stream = engine.reply(chat.id)
    received = []
    with pytest.raises(BackendError, match="scripted failure"):
        received.extend(stream)
    assert "".join(received) == "하나 둘"
    user, reply = engine.store.messages(chat.id)
    assert user.content == "들어보세요" and user.status == "complete"
    assert reply.status == "interrupted" and reply.content == "하나 둘"
    assert "scripted failure" in reply.error
    assert stream.outcome.message.id == reply.id


def test_failure_before_any_text_is_stored_as_error(engine):
    use(engine, ScriptedBackend(["x y"], fail_after=0))
    chat = start(engine)
    engine.send(chat.id, "안녕")
    with pytest.raises(BackendError):
        engine.reply(chat.id).text()
    reply = engine.store.messages(chat.id)[-1]
    assert (reply.status, reply.content, reply.stop_reason) == ("error", "", "error")


def test_closing_the_stream_early_saves_the_partial_reply(engine):
    use(engine, ScriptedBackend(["가 나 다 라 마"]))
    chat = start(engine)
    engine.send(chat.id, "안녕")
    stream = iter(engine.reply(chat.id))
    assert next(stream) == "가"
    stream.close()  # what Streamlit's stop button and a page reload do
    reply = engine.store.messages(chat.id)[-1]
    assert (reply.status, reply.content, reply.stop_reason) == ("interrupted", "가", "cancelled")


def test_cancel_event_marks_the_reply_interrupted(engine):
    use(engine, ScriptedBackend(["가 나 다 라"]))
    chat = start(engine)
    engine.send(chat.id, "안녕")
    cancel = threading.Event()
    pieces = []
    for piece in engine.reply(chat.id, cancel=cancel):
        pieces.append(piece)
        cancel.set()
    reply = engine.store.messages(chat.id)[-1]
    assert pieces == ["가"]
    assert reply.status == "interrupted" and reply.stop_reason == "cancelled"


def test_regenerate_replaces_the_last_reply(engine):
    use(engine, ScriptedBackend(["첫 답", "둘째 답"]))
    chat = start(engine)
    engine.send(chat.id, "질문")
    engine.reply(chat.id).text()
    assert engine.regenerate(chat.id).text() == "둘째 답"
    assert [m.content for m in engine.store.messages(chat.id)] == ["질문", "둘째 답"]


def test_system_prompt_and_goal_reach_the_backend(engine):
    backend = use(engine, ScriptedBackend(["네"]))
    chat = start(engine, goal=GoalCard("AI 엔지니어로 전향", evidence="부트캠프 수료"))
    engine.send(chat.id, "서른다섯인데 AI로 가려고요")
    engine.reply(chat.id).text()
    system, user = backend.requests[-1]
    persona = engine.persona("team-lead")
    assert system["role"] == "system" and system["content"].startswith(persona.system_prompt)
    assert "AI 엔지니어로 전향" in system["content"] and "부트캠프 수료" in system["content"]
    assert user == {"role": "user", "content": "서른다섯인데 AI로 가려고요"}


def test_each_critic_sees_the_panel_as_it_happened_with_others_attributed(engine):
    backend = use(engine, ScriptedBackend(["팀장 답", "이모 답", "팀장 둘째"]))
    chat = start(engine, personas=("team-lead", "late-relative"), strategy="plain")
    engine.send(chat.id, "첫 말")
    engine.reply(chat.id, "team-lead").text()
    engine.reply(chat.id, "late-relative").text()
    assert backend.requests[-1] == [
        {"role": "user", "content": "[사용자] 첫 말\n\n[팀장님] 팀장 답"},
    ]
    engine.send(chat.id, "둘째 말")
    engine.reply(chat.id, "team-lead").text()
    assert backend.requests[-1] == [
        {"role": "user", "content": "첫 말"},
        {"role": "assistant", "content": "팀장 답"},
        {"role": "user", "content": "[큰이모] 이모 답\n\n[사용자] 둘째 말"},
    ]


def test_session_title_comes_from_the_first_message(engine):
    use(engine, ScriptedBackend())
    chat = start(engine)
    engine.send(chat.id, "더이상 회사에 못있겠어. 나만의 회사를 차릴거야. 진심이야.\n둘째 줄")
    assert engine.store.get_session(chat.id).title == "더이상 회사에 못있겠어. 나만의 회사를 차릴거야. 진…"
    engine.send(chat.id, "다음 말")  # only the first message names the session
    assert engine.store.get_session(chat.id).title.startswith("더이상")


def test_unknown_persona_and_strategy_are_refused(engine):
    use(engine, ScriptedBackend())
    with pytest.raises(PersonaError, match="team-lead"):
        start(engine, personas=("nobody",))
    with pytest.raises(ValueError, match="fewshot"):
        start(engine, strategy="clever")
    assert engine.store.list_sessions() == []


def test_reply_without_a_user_message_is_refused(engine):
    use(engine, ScriptedBackend())
    chat = start(engine)
    with pytest.raises(ValueError):
        engine.reply(chat.id)


@pytest.mark.parametrize("text", ["", "   ", "\x00\x07"])
def test_empty_messages_are_refused(text):
    with pytest.raises(ValueError, match="비어"):
        clean_user_text(text)


def test_user_text_is_cleaned_and_bounded():
    assert clean_user_text(" 안녕\x00\x1b하세요\r\n둘째 줄\t끝 ") == "안녕하세요\n둘째 줄\t끝"
    assert len(clean_user_text("가" * MAX_USER_CHARS)) == MAX_USER_CHARS
    with pytest.raises(ValueError, match="너무 깁니다"):
        clean_user_text("가" * 100_000)
