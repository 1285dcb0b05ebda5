"""The debate UI through AppTest: panel turn order, the meter and ledger beside the chat, a
concession reached by answering objections, per-critic settings, the review and progress."""

import json

import pyarrow as pa
import pytest

from chatbot.app.meter import OFF_NOTE
from chatbot.app.review_view import shown
from chatbot.debate import CONCEDE_AT
from chatbot.store import Store
from tests.scripted import judgement
from tests.test_app import app, errors, page_text, run, send, submit_new_session

pytestmark = pytest.mark.usefixtures("ui_env")  # tests/conftest.py; `store` is there too


def panel_app(critics=("team-lead", "late-relative"), title="퇴사하고 창업"):
    return submit_new_session(run(app()), title, list(critics))


def assistant_personas(store: Store, session_id: int) -> list[str]:
    return [m.persona for m in store.messages(session_id) if m.role == "assistant"]


def captions(at) -> list[str]:
    return [c.value for c in at.caption]


def test_meter_and_ledger_move_after_a_turn(scripted, store):
    scripted.replies = ["팀장 답", "이모 답"]
    at = panel_app()
    assert "🎯 설득 미터" in [s.value for s in at.subheader]
    assert "**📊 팀장님** · 0점" in page_text(at)
    scripted.judgements = [judgement(team_lead=(20, {"o1": "addressed"},
                                                [("money", "현금으로 몇 달 버티나")]),
                                     late_relative=(5, {"o1": "open"}))]
    send(at, "유료 고객이 12명 있습니다")
    session_id = store.list_sessions()[0].id
    assert assistant_personas(store, session_id) == ["team-lead", "late-relative"]
    text = page_text(at)
    assert "**📊 팀장님** · 20점" in text and "**👵 큰이모** · 5점" in text
    assert any(c.startswith("🟡 답함: ") and "o1 addressed" in c for c in captions(at))
    assert "🔴 미해결: 현금으로 몇 달 버티나" in captions(at)
    assert len(store.judgements(session_id)) == 2
    assert at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")  # the score chart


def test_at_name_sends_the_turn_to_one_critic(scripted, store):
    at = panel_app(("team-lead", "late-relative", "calm-realist"))
    send(at, "@큰이모 제 나이가 그렇게 많나요?")
    assert assistant_personas(store, store.list_sessions()[0].id) == ["late-relative"]


def test_round_robin_chosen_in_the_form_takes_turns(scripted, store):
    at = run(app())
    at.radio(key="new_turn_order").set_value("round-robin")
    submit_new_session(at, "창업", ["team-lead", "late-relative"])
    send(at, "첫 말")
    send(at, "둘째 말")
    session = store.get_session(store.list_sessions()[0].id)
    assert session.turn_order == "round-robin"
    assert assistant_personas(store, session.id) == ["team-lead", "late-relative"]


def test_answering_objections_reaches_a_concession(scripted, store):
    scripted.replies = ["근거는요?"]
    at = panel_app(("team-lead",))
    scripted.judgements = [
        judgement(team_lead=(30, {"o1": "addressed"}, [("money", "현금 몇 달")])),
        judgement(team_lead=(60, {"o1": "conceded", "o2": "addressed"})),
        judgement(team_lead=(90, {"o2": "conceded"})),
    ]
    for text in ("유료 고객 12명, 월 매출 180만 원", "현금 14개월치가 있습니다", "계산표를 보내 드렸습니다"):
        send(at, text)
    assert "**📊 팀장님** · 75점 · 🏳️ 북극성 인정" in page_text(at)
    lead_card = scripted.requests[-1][0]["content"]
    assert "모두 근거로 답했습니다" in lead_card and "퇴사하고 창업" in lead_card


def test_a_failing_judge_warns_and_the_critics_still_answer(scripted, store):
    at = panel_app(("team-lead",))
    scripted.judgements = ["판정 불가"] * 3
    send(at, "들어 보세요")
    assert any("심판이 이번 발언을 판정하지 못했습니다" in w.value for w in at.warning)
    session_id = store.list_sessions()[0].id
    assert assistant_personas(store, session_id) == ["team-lead"]
    assert store.judgements(session_id) == []


def test_judge_can_be_switched_off(scripted, store):
    at = panel_app(("team-lead",))
    at.toggle(key="judge_on").set_value(False)
    run(at)
    assert OFF_NOTE in captions(at)
    send(at, "빠르게 대화만 할게요")
    assert scripted.judge_requests == []
    assert assistant_personas(store, store.list_sessions()[0].id) == ["team-lead"]
    assert OFF_NOTE in captions(at) and "**📊 팀장님** · 0점" in page_text(at)


def test_switching_the_judge_off_says_the_scores_stop_moving(scripted, store):
    scripted.replies = ["팀장 답", "팀장 답 2"]
    at = panel_app(("team-lead",))
    assert OFF_NOTE not in captions(at)  # on: the judge is the scripted backend, not the 270M
    scripted.judgements = [judgement(team_lead=(20, {"o1": "addressed"}))]
    send(at, "유료 고객이 12명 있습니다")
    at.toggle(key="judge_on").set_value(False)
    run(at)
    send(at, "이제 판정 없이")
    assert any(c.startswith("심판 판정이 꺼져 있어 점수가 더 이상") for c in captions(at))
    assert "**📊 팀장님** · 20점" in page_text(at)
    assert len(scripted.judge_requests) == 1


def test_per_critic_tone_is_saved_and_used(scripted, store):
    at = panel_app(("team-lead", "calm-realist"))
    session_id = store.list_sessions()[0].id
    at.selectbox(key=f"tone_{session_id}_team-lead").set_value("에겐")
    run(at)
    assert store.get_session(session_id).critic_settings == {"team-lead": {"tone": "에겐"}}
    send(at, "창업할래요")
    lead_prompt = scripted.requests[0][0]["content"]
    assert "부드럽고 공감하는" in lead_prompt


def test_review_is_written_shown_and_carried_into_the_next_session(scripted, store):
    at = panel_app(("team-lead",))
    scripted.judgements = [
        judgement(team_lead=(20, {"o1": "addressed"}, [("market", "신규 고객 유입")])),
        judgement(team_lead=(10, {"o2": "open"})),
    ]
    send(at, "유료 고객 23곳입니다")
    send(at, "그냥 잘 될 거예요")
    session_id = store.list_sessions()[0].id
    at.button(key=f"make_review_{session_id}").click()
    run(at)
    review = store.latest_review(session_id)
    assert review is not None and "> 유료 고객 23곳입니다" in review.markdown
    assert shown(review.markdown).strip() in [m.value for m in at.markdown]
    assert at.get("download_button")
    at.button(key=f"goal_from_review_{session_id}").click()
    run(at)
    goal_id = store.get_session(session_id).goal_id
    assert "- 유료 고객 23곳입니다" in store.get_goal(goal_id).evidence
    at.button(key=f"next_session_{session_id}").click()
    run(at)
    newest = store.list_sessions()[0]
    assert newest.id != session_id and store.get_session(newest.id).goal_id == goal_id
    assert "**📈 이 북극성의 진행**" in page_text(at)
    assert not errors(at)


def test_new_session_form_can_continue_an_earlier_goal(scripted, store):
    at = panel_app(("team-lead",), title="AI 엔지니어로 전향")
    first = store.list_sessions()[0]
    at.button(key="new_session").click()
    run(at)
    goal_id = store.get_session(first.id).goal_id
    at.selectbox(key="new_goal").set_value(goal_id)
    next(b for b in at.button if b.label == "토론 시작").click()
    run(at)
    sessions = store.list_sessions()
    assert len(sessions) == 2
    assert {store.get_session(s.id).goal_id for s in sessions} == {goal_id}
    assert len(store.list_goals()) == 1


def test_progress_page_shows_every_session_on_a_goal(scripted, store):
    at = panel_app(("team-lead",), title="AI 엔지니어로 전향")
    scripted.judgements = [judgement(team_lead=(20, {"o1": "addressed"}))]
    send(at, "부트캠프를 수료했습니다")
    first = store.list_sessions()[0].id
    at.button(key=f"make_review_{first}").click()
    run(at)
    at.button(key=f"next_session_{first}").click()
    run(at)
    scripted.judgements = [judgement(team_lead=(25, {"o1": "conceded"}))]
    send(at, "포트폴리오 세 개를 배포했습니다")
    at.switch_page("pages/progress.py")
    run(at)
    assert [h.value for h in at.header] == ["북극성 진행"]
    assert at.selectbox(key="progress_goal").value == store.get_session(first).goal_id
    labels = [e.label for e in at.expander]
    assert any(label.startswith(f"#{first} ") and "평균 20점" in label for label in labels)
    assert any("평균 25점" in label for label in labels)
    assert "**📈 이 북극성의 진행**" in page_text(at)
    assert any(m.value.startswith("#### 토론 리뷰") for m in at.markdown)


def chart_layers(at) -> dict[str, list[dict]]:
    """The score chart's rows per layer mark (line, rule), read back from its Arrow data."""
    [chart] = at.get("arrow_vega_lite_chart") or at.get("vega_lite_chart")
    spec = json.loads(chart.proto.spec)
    data = {d.name: pa.ipc.open_stream(d.data.data).read_all().to_pylist()
            for d in chart.proto.datasets}
    return {layer["mark"]["type"]: data[layer["data"]["name"]] for layer in spec["layer"]} | {
        "y_domain": spec["layer"][0]["encoding"]["y"]["scale"]["domain"]}


def test_one_turn_score_chart_starts_at_zero_on_a_fixed_scale(scripted, store):
    # found in the browser: after the first message the chart had one point per critic, drew
    # no line, and labelled its degenerate axes 0.000000 and 1.000000
    at = panel_app()
    scripted.judgements = [judgement(team_lead=(20, {"o1": "addressed"}),
                                     late_relative=(5, {"o1": "open"}))]
    send(at, "유료 고객이 12명 있습니다")
    layers = chart_layers(at)
    assert sorted((r["비평가"], r["턴"], r["설득 점수"]) for r in layers["line"]) == [
        ("큰이모", 0, 0), ("큰이모", 1, 5), ("팀장님", 0, 0), ("팀장님", 1, 20)]
    assert layers["y_domain"] == [0, 100]
    assert layers["rule"] == [{"설득 점수": CONCEDE_AT}]


def test_made_review_shows_at_once_with_page_sized_headings(scripted, store):
    # found in the browser: right after "토론 마치고 리뷰 만들기" the button kept that label
    # beside the review it had made, and the review's H1 title filled the side column
    at = panel_app(("team-lead",))
    scripted.judgements = [judgement(team_lead=(20, {"o1": "addressed"}))]
    send(at, "유료 고객 23곳입니다")
    session_id = store.list_sessions()[0].id
    at.button(key=f"make_review_{session_id}").click()
    run(at)
    assert at.button(key=f"make_review_{session_id}").label == "리뷰 다시 만들기"
    review = store.latest_review(session_id)
    assert review.markdown.startswith("# 토론 리뷰 — ")  # the download keeps it as written
    markdown = [m.value for m in at.markdown]
    assert shown(review.markdown).strip() in markdown
    assert not [m for m in markdown if m.startswith(("# ", "## ", "### "))]
    assert shown("# 리뷰\n\n## 가장 강했던 반박\n\n> # 인용\n") == (
        "#### 리뷰\n\n##### 가장 강했던 반박\n\n> # 인용\n")
