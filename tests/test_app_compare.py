"""The 비교 page driven through AppTest, against the scripted backend and a tmp database."""

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

ROOT = Path(__file__).resolve().parents[1]
APP = ROOT / "chatbot" / "app" / "main.py"
ASK = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."


pytestmark = pytest.mark.usefixtures("ui_env")  # tests/conftest.py; `store` is there too


def run(at: AppTest) -> AppTest:
    at.run()
    assert not at.exception, [e.message for e in at.exception]
    return at


def compare_page() -> AppTest:
    at = run(AppTest.from_file(str(APP), default_timeout=120))
    at.switch_page("pages/compare.py")
    return run(at)


def submit(at: AppTest, *, persona="team-lead", question=ASK, models="script",
           strategies=("plain", "system", "fewshot", "finetuned")) -> AppTest:
    at.selectbox(key="compare_persona").set_value(persona)
    at.text_area(key="compare_question").input(question)
    at.selectbox(key="compare_backend").set_value("scripted")
    at.text_input(key="compare_models").input(models)
    at.multiselect(key="compare_strategies").set_value(list(strategies))
    next(b for b in at.button if b.label == "비교 실행").click()
    return run(at)


def texts(at: AppTest) -> str:
    return "\n".join(str(e.value) for e in (*at.markdown, *at.caption, *at.subheader))


def test_page_is_in_the_navigation_and_starts_with_the_study_question(scripted):
    at = compare_page()
    assert [h.value for h in at.header] == ["비교 모드"]
    assert at.text_area(key="compare_question").value == ASK
    assert at.multiselect(key="compare_strategies").value == [
        "plain", "system", "fewshot", "finetuned"]
    assert at.text_input(key="compare_models").value == "script"
    assert "아직 비교가 없습니다." in [c.value for c in at.sidebar.caption]


def test_running_a_comparison_fills_the_grid_and_the_database(scripted, store):
    scripted.replies = ["숫자로 보면요?", "근거는요?", "리스크는 뭡니까?", "기간은요?"]
    at = submit(compare_page())
    (comparison,) = store.list_comparisons()
    answers = store.comparison_answers(comparison.id)
    assert [(a.strategy, a.status, a.answer) for a in answers] == [
        ("plain", "complete", "숫자로 보면요?"), ("system", "complete", "근거는요?"),
        ("fewshot", "complete", "리스크는 뭡니까?"), ("finetuned", "complete", "기간은요?")]
    # the grid after the rerun: every answer with its strategy and stats, a notes field each
    shown = texts(at)
    for text in ("숫자로 보면요?", "근거는요?", "리스크는 뭡니까?", "기간은요?", "#### scripted:script",
                 "**fewshot · 지시문 + 예시 대화**", f"> {ASK}"):
        assert text in shown, text
    assert len([c for c in at.caption if "tokens · 첫 토큰" in c.value]) == 4
    assert [t.label for t in at.text_area if t.key.startswith("note_")] == ["메모"] * 4
    assert len(scripted.requests) == 4 and scripted.requests[0] == [
        {"role": "user", "content": ASK}]
    labels = [d.proto.label for d in at.get("download_button")]
    assert labels == ["Markdown 내려받기", "CSV 내려받기"]


def test_notes_typed_on_the_page_are_saved(scripted, store):
    at = submit(compare_page(), strategies=("system",))
    (comparison,) = store.list_comparisons()
    (answer,) = store.comparison_answers(comparison.id)
    at.text_area(key=f"note_{answer.id}").input("팀장 말투가 살아 있음")
    run(at)
    assert store.comparison_answers(comparison.id)[0].notes == "팀장 말투가 살아 있음"
    # a fresh browser session shows the saved note
    again = compare_page()
    again.sidebar.radio[0].set_value(comparison.id)
    run(again)
    assert again.text_area(key=f"note_{answer.id}").value == "팀장 말투가 살아 있음"


def test_past_comparisons_are_listed_and_reopened(scripted, store):
    scripted.replies = ["첫 비교 답"]
    at = submit(compare_page(), question="유학 갈래요", strategies=("plain",))
    scripted.replies = ["둘째 비교 답"]
    next(b for b in at.sidebar.button if b.label == "＋ 새 비교").click()
    run(at)
    submit(at, question="귀농할래요", strategies=("system",))
    first, second = sorted(c.id for c in store.list_comparisons())
    radio = at.sidebar.radio[0]
    assert radio.options == [f"#{second} 팀장님 · 귀농할래요", f"#{first} 팀장님 · 유학 갈래요"]
    radio.set_value(first)
    run(at)
    assert "첫 비교 답" in texts(at) and "둘째 비교 답" not in texts(at)


def test_unknown_model_is_refused_with_nothing_stored(scripted, store, monkeypatch):
    scripted.models = list
    at = submit(compare_page(), models="no-such-model")
    assert any("비교를 시작할 수 없습니다" in e.value and "no-such-model" in e.value
               for e in at.error)
    assert store.list_comparisons() == []


def test_a_failing_answer_is_shown_and_the_rest_still_run(scripted, store):
    scripted.replies = ["하나 둘 셋"]
    scripted.fail_after = 0
    at = submit(compare_page(), strategies=("plain", "system"))
    (comparison,) = store.list_comparisons()
    assert [a.status for a in store.comparison_answers(comparison.id)] == ["error", "error"]
    assert len([e for e in at.error if "scripted failure" in e.value]) == 2


def test_pending_answers_can_be_generated_later(scripted, store):
    comparison = store.create_comparison(
        "calm-realist", "회사 그만둘래요", [("scripted", "script", "system", None)])
    scripted.replies = ["천천히 생각해 봐요"]
    at = compare_page()
    at.sidebar.radio[0].set_value(comparison.id)
    run(at)
    assert "생성 대기 중…" in [c.value for c in at.caption]
    next(b for b in at.button if b.label.startswith("▶ 남은 답변 1개")).click()
    run(at)
    (answer,) = store.comparison_answers(comparison.id)
    assert (answer.status, answer.answer) == ("complete", "천천히 생각해 봐요")
