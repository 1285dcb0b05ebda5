"""The review report, computed from the judge's ledger, rendered, saved and printed by
`polaris review`; and the progress view across sessions on one goal."""

import json

import pytest

from chatbot import debate
from chatbot.engine import ChatEngine
from chatbot.review import (
    EVIDENCE_HINTS,
    build_review,
    goal_progress,
    goal_update,
    render_markdown,
    write_review,
)
from serving.prompting import GoalCard
from tests.cli import polaris
from tests.scripted import ScriptedBackend, judgement

STRONG = "유료 고객 23곳, 다섯 달 연속 월 매출 300만 원입니다."
WEAK = "그냥 열심히 하면 될 것 같아요."
MIDDLE = "통장에 4,200만 원 있어요."


@pytest.fixture
def engine(settings, scripted):
    engine = ChatEngine(settings)
    engine._backend_factory = lambda kind, settings, model: scripted
    return engine


def debate_session(engine: ChatEngine, scripted: ScriptedBackend, goal_id=None,
                   script=None) -> int:
    """A two-critic session: a middling, a weak and a strong user turn, each judged."""
    chat = engine.start_session(["team-lead", "late-relative"], backend="scripted",
                                goal=None if goal_id else GoalCard("퇴사하고 창업",
                                                                   evidence="주말 2년 개발"),
                                goal_id=goal_id)
    scripted.judgements = script or [
        judgement(team_lead=(10, {"o1": "addressed"}, [("market", "신규 고객 유입 경로")]),
                  late_relative=(10, {"o1": "open"}, [("family", "결혼은 언제 하니")])),
        judgement(team_lead=(5, {"o2": "open"}), late_relative=(5, {"o2": "open"})),
        judgement(team_lead=(30, {"o1": "conceded", "o2": "addressed"}),
                  late_relative=(25, {"o1": "addressed"})),
    ]
    for text in (MIDDLE, WEAK, STRONG):
        engine.send(chat.id, text)
        debate.judge_turn(engine, chat.id)
        for pid in chat.personas:
            engine.reply(chat.id, pid).text()
    return chat.id


def test_review_is_computed_from_the_ledger(engine, scripted):
    session_id = debate_session(engine, scripted)
    data = build_review(engine.store, session_id, engine.personas)
    assert data["strongest"]["quote"] == STRONG
    assert data["strongest"]["delta"] == 22.5  # team-lead 5→30, late-relative 5→25
    assert "신규 고객 유입 경로" in data["strongest"]["resolved"]
    assert data["weakest"]["quote"] == WEAK and data["weakest"]["delta"] == -5.0
    assert data["final"]["team-lead"] == {"name": "팀장님", "score": 30, "objections": 2,
                                          "resolved": 2, "conceded": False}
    assert [(o["critic"], o["text"]) for o in data["unresolved"]] == [
        ("late-relative", "결혼은 언제 하니")]
    assert data["evidence"][0]["hints"] == [EVIDENCE_HINTS["family"]]
    assert data["evidence"][0]["concession"] == engine.persona("late-relative").concession
    assert data["homework"] == [(f"큰이모의 「결혼은 언제 하니」에 답할 근거 준비: "
                                f"{EVIDENCE_HINTS['family']}")]
    assert data["history"][-1] == {"team-lead": 30, "late-relative": 25}
    assert [t["quote"] for t in data["accepted"]] == [MIDDLE, STRONG]


def test_review_markdown_has_every_section_with_quotes(engine, scripted):
    markdown = render_markdown(build_review(engine.store, debate_session(engine, scripted),
                                            engine.personas))
    sections = ["# 토론 리뷰", "## 최종 설득 점수", "## 가장 강했던 반박", "## 가장 약했던 반박",
                "## 풀리지 않은 반론", "## 이런 근거가 있었다면", "## 다음 토론 숙제"]
    assert [markdown.index(s) for s in sections] == sorted(markdown.index(s) for s in sections)
    assert f"> {STRONG}" in markdown and f"> {WEAK}" in markdown
    assert "이 발언 뒤 평균 점수 +22.5" in markdown
    assert "| 팀장님 | 30 | 2/2 | 아직 |" in markdown
    assert "- **큰이모** (family) 결혼은 언제 하니" in markdown


def test_a_session_without_judgements_still_gets_a_review(engine, scripted):
    chat = engine.start_session(["team-lead"], backend="scripted")
    engine.send(chat.id, "안녕하세요")
    data = build_review(engine.store, chat.id, engine.personas)
    assert data["strongest"] is None and data["judged_turns"] == 0
    assert "심판 기록이 없습니다" in data["homework"][-1]
    markdown = render_markdown(data)
    assert "점수를 올린 발언이 아직 없습니다." in markdown
    assert "비교할 발언이 부족합니다" in markdown


def test_review_is_saved_and_the_latest_is_read_back(engine, scripted):
    session_id = debate_session(engine, scripted)
    first = write_review(engine.store, session_id, engine.personas)
    second = write_review(engine.store, session_id, engine.personas)
    latest = engine.store.latest_review(session_id)
    assert latest.id == second.id != first.id
    assert latest.markdown.startswith("# 토론 리뷰") and latest.data["mean_score"] == 27.5
    engine.store.delete_session(session_id)
    assert engine.store.latest_review(session_id) is None
    assert engine.store.judgements(session_id) == []


def test_goal_evidence_grows_from_accepted_rebuttals(engine, scripted):
    data = build_review(engine.store, debate_session(engine, scripted), engine.personas)
    updated = goal_update("주말 2년 개발", data)
    assert updated == f"주말 2년 개발\n- {MIDDLE}\n- {STRONG}"
    assert goal_update(updated, data) is None


def test_progress_across_sessions_on_the_same_goal(engine, scripted):
    first = debate_session(engine, scripted)
    goal_id = engine.store.get_session(first).goal_id
    second = debate_session(engine, scripted, goal_id=goal_id, script=[
        judgement(team_lead=(25, {"o1": "addressed"}), late_relative=(25, {"o1": "addressed"})),
        judgement(team_lead=(50, {"o1": "conceded"}), late_relative=(50, {"o1": "conceded"})),
        judgement(team_lead=(75, {}), late_relative=(75, {})),
    ])
    rows = goal_progress(engine.store, goal_id, engine.personas)
    assert [r["session_id"] for r in rows] == [first, second]
    assert [r["mean_score"] for r in rows] == [27.5, 75.0]
    assert [(r["resolved"], r["objections"], r["conceded"]) for r in rows] == [
        (3, 4, 0), (2, 2, 2)]


def test_cli_review_prints_saves_and_updates_the_goal(engine, scripted, capsys, tmp_path):
    session_id = debate_session(engine, scripted)
    code, out, _ = polaris(capsys, "review", session_id)
    assert code == 0 and out.startswith("# 토론 리뷰") and STRONG in out
    assert engine.store.latest_review(session_id) is not None
    code, out, _ = polaris(capsys, "review", session_id, "--json", "--update-goal")
    assert code == 0 and json.loads(out)["strongest"]["quote"] == STRONG
    goal = engine.store.get_goal(engine.store.get_session(session_id).goal_id)
    assert STRONG in goal.evidence
    target = tmp_path / "review.md"
    code, _, _err = polaris(capsys, "review", session_id, "--out", target)
    assert code == 0 and target.read_text(encoding="utf-8").startswith("# 토론 리뷰")


def test_cli_review_of_a_missing_session_exits_2(capsys):
    code, out, err = polaris(capsys, "review", 999)
    assert code == 2 and out == ""
    assert err.startswith("polaris: error: session 999 does not exist")
