"""The Streamlit UI driven through AppTest, against the scripted backend and a tmp database."""

import json
import os
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from chatbot.store import Store
from serving.persona import load_all_personas

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "chatbot" / "app" / "main.py"
CRITICS = ["팀장님", "은퇴한 개발자 선배", "비관적인 취준생", "큰이모", "차분한 현실주의자"]


pytestmark = pytest.mark.usefixtures("ui_env")  # tests/conftest.py; `store` is there too


# -- helpers -------------------------------------------------------------------------------


def app() -> AppTest:
    return AppTest.from_file(str(APP), default_timeout=120)


def run(at: AppTest) -> AppTest:
    """Run (or rerun) and fail loudly on an uncaught exception in the script."""
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def submit_new_session(at: AppTest, title: str, critics: list[str]) -> AppTest:
    form_title = next(t for t in at.text_input if t.label.startswith("북극성"))
    form_title.input(title)
    at.multiselect(key="new_personas").set_value(critics)
    next(b for b in at.button if b.label == "토론 시작").click()
    return run(at)


def page_text(at: AppTest) -> str:
    """All text the page shows: markdown, text, headers, captions."""
    parts = [e.value for e in (*at.markdown, *at.text, *at.header, *at.caption)]
    return "\n".join(str(p) for p in parts)


def errors(at: AppTest) -> list[str]:
    return [e.value for e in at.error]


def send(at: AppTest, text: str) -> AppTest:
    at.chat_input[0].set_value(text)
    return run(at)


def only_session(store: Store):
    sessions = store.list_sessions()
    assert len(sessions) == 1, sessions
    return sessions[0]


def new_app_with_session(title: str = "창업", critics: tuple[str, ...] = ("team-lead",)) -> AppTest:
    """A fresh app with one session started through the form."""
    return submit_new_session(run(app()), title, list(critics))


# -- tests ---------------------------------------------------------------------------------


def test_first_run_shows_new_session_form(scripted, store):
    at = run(app())
    assert not at.error
    assert [h.value for h in at.header] == ["새 토론 시작"]
    assert len(at.multiselect(key="new_personas").value) == 1  # one critic preselected
    assert not at.chat_input
    assert store.list_sessions() == []


def test_form_creates_session(scripted, store):
    at = new_app_with_session("회사를 그만두고 창업하기", ("team-lead", "late-relative"))
    chat = only_session(store)
    assert chat.personas == ["team-lead", "late-relative"]
    assert chat.backend == "scripted"
    assert chat.model == "script"
    assert chat.strategy == "system"
    assert chat.goal_title == "회사를 그만두고 창업하기"
    assert not at.error
    assert "새 토론 시작" not in [h.value for h in at.header]
    assert chat.title in [h.value for h in at.header]
    assert "🧭 북극성: 회사를 그만두고 창업하기" in [e.label for e in at.expander]
    assert len(at.chat_input) == 1


def test_form_without_critics_is_refused(scripted, store):
    at = run(app())
    at.multiselect(key="new_personas").set_value([])
    next(b for b in at.button if b.label == "토론 시작").click()
    run(at)
    assert any("비평가를 한 명 이상" in e for e in errors(at))
    assert store.list_sessions() == []


def test_send_stores_message_and_scripted_reply(scripted, store):
    scripted.replies = ["그 계획은 숫자가 부족합니다.", "조카야 밥은 먹고 다니니."]
    at = new_app_with_session("창업", ("team-lead", "late-relative"))
    chat_id = only_session(store).id
    send(at, "회사를 그만두려고 합니다.")

    assert not at.error
    messages = store.messages(chat_id)
    assert [(m.role, m.persona, m.status) for m in messages] == [
        ("user", None, "complete"),
        ("assistant", "team-lead", "complete"),
        ("assistant", "late-relative", "complete"),
    ]
    assert [m.content for m in messages] == [
        "회사를 그만두려고 합니다.", "그 계획은 숫자가 부족합니다.", "조카야 밥은 먹고 다니니."]
    assert not at.warning
    shown = page_text(at)
    assert "회사를 그만두려고 합니다." in shown
    assert shown.index("그 계획은 숫자가 부족합니다.") < shown.index("조카야 밥은 먹고 다니니.")
    # the first message names an untitled session
    assert only_session(store).title == "회사를 그만두려고 합니다."


def test_system_prompt_reaches_backend(scripted, store):
    at = new_app_with_session("회사를 그만두고 창업하기")
    send(at, "어떻게 생각하세요?")
    personas = load_all_personas(None, Path(os.environ["POLARIS_DATA_DIR"]))
    system, *rest = scripted.requests[-1]
    assert system["role"] == "system"
    assert personas["team-lead"].system_prompt.strip() in system["content"]
    assert "회사를 그만두고 창업하기" in system["content"]
    assert rest[-1] == {"role": "user", "content": "어떻게 생각하세요?"}


def test_backend_failure_mid_stream(scripted, store):
    scripted.replies = ["하나 둘 셋 넷 다섯"]
    scripted.fail_after = 2
    at = new_app_with_session()
    chat_id = only_session(store).id
    send(at, "괜찮을까요?")

    assert [e for e in errors(at) if "scripted failure" in e] == [
        "중단된 답변 — 답변이 중간에 끊겼습니다: scripted failure in the middle of the reply"]
    user, reply = store.messages(chat_id)
    assert (user.role, user.content) == ("user", "괜찮을까요?")
    assert (reply.role, reply.status, reply.content) == ("assistant", "interrupted", "하나 둘")
    assert "scripted failure" in reply.error
    assert "하나 둘" in page_text(at)

    run(at)  # the failure stays beside the reply it broke, shown once
    assert len(errors(at)) == 1


def test_regenerate_replaces_last_reply(scripted, store):
    scripted.replies = ["첫 답변입니다.", "다시 만든 답변입니다."]
    at = new_app_with_session()
    chat_id = only_session(store).id
    send(at, "질문 하나")
    assert store.messages(chat_id)[-1].content == "첫 답변입니다."

    at.button(key="regenerate").click()
    run(at)
    messages = store.messages(chat_id)
    last_user = max(i for i, m in enumerate(messages) if m.role == "user")
    after = messages[last_user + 1:]
    assert [(m.role, m.content, m.status) for m in after] == [
        ("assistant", "다시 만든 답변입니다.", "complete")]
    shown = page_text(at)
    assert "다시 만든 답변입니다." in shown
    assert "첫 답변입니다." not in shown


def test_rename_session(scripted, store):
    at = new_app_with_session()
    chat_id = only_session(store).id
    at.text_input(key=f"title_{chat_id}").input("새 이름")
    at.button(key=f"rename_{chat_id}").click()
    run(at)
    assert only_session(store).title == "새 이름"
    assert "새 이름" in [h.value for h in at.header]


def test_rename_field_follows_title_from_first_message(scripted, store):
    at = new_app_with_session()
    chat_id = only_session(store).id
    send(at, "첫 메시지가 이름이 됩니다")
    assert at.text_input(key=f"title_{chat_id}").value == "첫 메시지가 이름이 됩니다"

    at.button(key=f"rename_{chat_id}").click()  # renaming unchanged must not restore "새 대화"
    run(at)
    assert only_session(store).title == "첫 메시지가 이름이 됩니다"


def test_blank_rename_is_refused(scripted, store):
    at = new_app_with_session()
    chat_id = only_session(store).id
    at.text_input(key=f"title_{chat_id}").input("   ")
    at.button(key=f"rename_{chat_id}").click()
    run(at)
    assert errors(at), "a blank title must be refused with a message"
    assert only_session(store).title == "새 대화"


def test_delete_needs_confirmation(scripted, store):
    at = new_app_with_session()
    chat_id = only_session(store).id
    assert at.button(key=f"delete_{chat_id}").disabled

    at.checkbox(key=f"confirm_delete_{chat_id}").check()
    run(at)
    assert not at.button(key=f"delete_{chat_id}").disabled
    at.button(key=f"delete_{chat_id}").click()
    run(at)
    assert store.list_sessions() == []
    assert [h.value for h in at.header] == ["새 토론 시작"]


def test_resume_other_session(scripted, store):
    scripted.replies = ["첫 대화의 답변", "둘째 대화의 답변"]
    at = new_app_with_session("첫째 목표")
    send(at, "첫 대화 질문")
    at.button(key="new_session").click()
    run(at)
    submit_new_session(at, "둘째 목표", ["calm-realist"])
    send(at, "둘째 대화 질문")
    assert "둘째 대화 질문" in page_text(at)

    first = next(s for s in store.list_sessions() if s.goal_title == "첫째 목표")
    radio = at.sidebar.radio[0]
    radio.set_value(first.id)
    run(at)
    shown = page_text(at)
    assert "첫 대화 질문" in shown and "첫 대화의 답변" in shown
    assert "둘째 대화 질문" not in shown
    assert first.title in [h.value for h in at.header]
    assert at.text_input(key=f"title_{first.id}").value == first.title


def test_reload_resumes_the_session_named_in_the_url(scripted, store):
    at = new_app_with_session("다시 열 목표")
    send(at, "새로고침 전에 한 말")
    chat = only_session(store)
    assert at.query_params["session"] == str(chat.id)

    reloaded = app()  # a new browser session, as after a page reload
    reloaded.query_params["session"] = str(chat.id)
    run(reloaded)
    assert chat.title in [h.value for h in reloaded.header]
    assert "새로고침 전에 한 말" in page_text(reloaded)

    stale = app()
    stale.query_params["session"] = "999"  # a deleted or unknown session: start page, no error
    run(stale)
    assert not stale.exception and not stale.error
    assert "새 토론 시작" in [h.value for h in stale.header]


def test_a_long_session_draws_the_latest_messages_and_more_on_request(scripted, store):
    from chatbot.app.chat_view import RECENT

    at = new_app_with_session("긴 대화")
    chat = only_session(store)
    hidden = RECENT + RECENT // 2  # more than one page hidden: two clicks show them all
    for i in range(RECENT + hidden):
        store.add_message(chat.id, "user", f"메시지-{i:03d}")
    run(at)
    shown = page_text(at)
    last = RECENT + hidden - 1
    assert f"메시지-{last:03d}" in shown and f"메시지-{hidden:03d}" in shown
    assert f"메시지-{hidden - 1:03d}" not in shown
    more = at.button(key=f"more_{chat.id}")
    assert more.label == f"이전 메시지 {RECENT}개 더 보기 (숨김 {hidden}개)"
    more.click()
    run(at)
    assert f"메시지-{hidden - RECENT:03d}" in page_text(at)
    assert f"메시지-{hidden - RECENT - 1:03d}" not in page_text(at)
    more = at.button(key=f"more_{chat.id}")
    assert more.label == f"이전 메시지 {hidden - RECENT}개 더 보기 (숨김 {hidden - RECENT}개)"
    more.click()
    run(at)
    assert "메시지-000" in page_text(at)
    assert not [b for b in at.button if b.key == f"more_{chat.id}"]


@pytest.mark.parametrize("text", ["   ", "\n\t "])
def test_blank_message_is_refused(scripted, store, text):
    at = new_app_with_session()
    chat_id = only_session(store).id
    send(at, text)
    assert any("메시지가 비어 있습니다" in e for e in errors(at)), errors(at)
    assert store.messages(chat_id) == []
    assert scripted.requests == []


def test_empty_message_stores_nothing(scripted, store):
    at = new_app_with_session()
    chat_id = only_session(store).id
    send(at, "")
    assert store.messages(chat_id) == []
    assert scripted.requests == []


def test_control_characters_are_removed(scripted, store):
    at = new_app_with_session()
    chat_id = only_session(store).id
    send(at, "안녕\x00\x07하세요")
    user = store.messages(chat_id)[0]
    assert (user.role, user.content) == ("user", "안녕하세요")
    assert scripted.requests[-1][-1]["content"] == "안녕하세요"


def test_personas_page_lists_all_critics(scripted):
    at = run(app())
    at.switch_page("pages/personas.py")
    run(at)
    assert [h.value for h in at.header] == ["비평가 소개"]
    names = [s.value for s in at.subheader]
    for name in CRITICS:
        assert any(name in n for n in names), (name, names)
    assert len(names) == len(CRITICS)


def test_model_picker_health(scripted):
    at = run(app())
    assert at.sidebar.selectbox(key="backend").value == "scripted"
    assert any("연결됨" in s.value for s in at.sidebar.success)
    assert not at.error

    at.sidebar.selectbox(key="backend").select("ollama")
    run(at)
    assert not at.sidebar.success
    problems = [e.value for e in at.sidebar.error]
    assert any("사용할 수 없음" in p and "POLARIS_OLLAMA_HOST" in p for p in problems), problems
    assert not at.warning
    assert at.sidebar.text_input(key="model").value == ""  # no model list without a server


def test_paced_joins_pieces_and_closes_the_source_when_stopped():
    from chatbot.app.chat_view import paced

    assert list(paced(["가", "나", "다"], every_s=3600)) == ["가나다"]
    assert list(paced(["가", "나"], every_s=0)) == ["가", "나"]
    closed = []

    def source():
        try:
            yield from ["하나", "둘", "셋"]
        finally:
            closed.append(True)

    stream = paced(source(), every_s=0)
    assert next(stream) == "하나"
    stream.close()  # what Streamlit's stop button does to the generator
    assert closed == [True]


def test_bad_setting_is_shown_with_the_variable_to_fix(scripted, monkeypatch):
    monkeypatch.setenv("POLARIS_N_CTX", "lots")
    at = run(app())
    assert [e for e in errors(at) if "POLARIS_N_CTX" in e and ".env" in e]


# -- sidebar: selection and export -----------------------------------------------------------


def test_the_sidebar_tells_the_browser_the_selection_after_a_rename(scripted, store):
    """A browser keeps a radio's own choice (its label) until the server sends a value; a
    rename changes the label, so the list showed no session selected unless the server
    states the selection on every run."""
    at = new_app_with_session()
    chat_id = only_session(store).id
    for title in ("첫 이름", "둘째 이름"):
        at.text_input(key=f"title_{chat_id}").input(title)
        at.button(key=f"rename_{chat_id}").click()
        run(at)
        radio = at.sidebar.radio[0]
        assert radio.value == chat_id and radio.options == [f"{title} · 0"]
        assert radio.proto.set_value and radio.proto.raw_value == f"{title} · 0"


def test_sessions_with_the_same_title_can_each_be_picked(scripted, store):
    at = new_app_with_session("첫째")
    at.button(key="new_session").click()
    run(at)
    submit_new_session(at, "둘째", ["calm-realist"])
    ids = [s.id for s in store.list_sessions()]
    assert [s.title for s in store.list_sessions()] == ["새 대화", "새 대화"]
    for chat_id in (*reversed(ids), *ids):
        at.sidebar.radio[0].set_value(chat_id)
        run(at)
        assert at.session_state.session_id == chat_id
        assert at.query_params["session"] == str(chat_id)
        assert at.sidebar.radio[0].value == chat_id
    assert at.sidebar.radio[0].options == [f"새 대화 · 0 · #{i}" for i in ids]


def test_export_buttons_for_the_selected_session_build_the_file_on_click(scripted, store):
    at = run(app())
    assert not at.sidebar.download_button  # nothing to export on the new-session page
    scripted.replies = ["숫자로 말씀해 주세요."]
    submit_new_session(at, "창업", ["team-lead"])
    send(at, "퇴사하고 창업할래요")
    chat_id = only_session(store).id
    buttons = at.sidebar.download_button
    assert [b.label for b in buttons] == ["Markdown으로 내보내기", "JSON으로 내보내기"]
    assert [b.key for b in buttons] == [f"export_md_{chat_id}", f"export_json_{chat_id}"]
    for button in buttons:  # deferred: no file is made while the page is drawn
        assert button.proto.deferred_file_id and not button.proto.url
        assert button.proto.ignore_rerun


def test_export_downloads_hold_the_whole_session(scripted, store):
    from chatbot.app.export_view import downloads
    from chatbot.engine import ChatEngine
    from chatbot.export import session_json, session_markdown
    from serving.settings import Settings

    scripted.replies = ["숫자로 말씀해 주세요."]
    engine = ChatEngine(Settings())
    chat = engine.start_session(["team-lead"], goal=None)
    engine.send(chat.id, "퇴사하고 창업할래요")
    "".join(engine.reply(chat.id, "team-lead"))
    chat = store.get_session(chat.id)
    day = f"{chat.created_at:%Y-%m-%d}"

    markdown, as_json = downloads(engine, chat)
    assert (markdown.file_name, markdown.mime) == (f"polaris-session-{chat.id}-{day}.md",
                                                   "text/markdown")
    assert (as_json.file_name, as_json.mime) == (f"polaris-session-{chat.id}-{day}.json",
                                                 "application/json")
    assert markdown.data() == session_markdown(store, chat.id, engine.personas)
    assert "> 퇴사하고 창업할래요" in markdown.data() and "> 숫자로 말씀해 주세요." in markdown.data()
    data = json.loads(as_json.data())
    assert data == json.loads(session_json(store, chat.id))
    assert [m["content"] for m in data["messages"]] == ["퇴사하고 창업할래요", "숫자로 말씀해 주세요."]

    engine.send(chat.id, "고객이 세 명 있어요")  # made on the click: what is stored then
    assert "고객이 세 명 있어요" in markdown.data()


def test_a_reply_shows_its_stats_even_when_cut_off_inside_a_code_block(scripted, store):
    at = new_app_with_session("코드")
    chat = only_session(store)
    store.add_message(chat.id, "user", "예시 코드를 보여 주세요")
    for text in ("여기 있습니다:\n```python\nprint('runway')", "끝난 코드:\n```\nx = 1\n```"):
        store.add_message(chat.id, "assistant", text, persona="team-lead", tokens=12,
                          ttft_s=0.25, tok_per_s=40.0)
    run(at)
    replies = [m.value for m in at.markdown if m.value.startswith("**팀장님**\n\n")]
    assert len(replies) == 2
    for reply in replies:  # the stats line sits after a closed fence, outside any code block
        body, stats = reply.rsplit("\n\n", 1)
        assert stats == ":small[:gray[12 tokens · 첫 토큰 0.25s · 40.0 tok/s]]"
        assert body.count("```") % 2 == 0
