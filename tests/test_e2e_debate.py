"""Issue 6 end to end in a real browser: a panel debate where the meters move because of what the
user writes, a critic concedes once its objections are answered, and the review follows.

Debian's Chromium (Playwright) drives `polaris run` on a free port; the browser helpers come from
tests/test_e2e_browser.py. The judge and both critics run on a local server speaking Ollama's
API: it checks every request the app sends (the judge's exactly, as Ollama's /api/chat documents
it: model, messages, stream, `format` = the judge's JSON schema, options, keep_alive) and answers
from the user's words: a message with cash and runway answers the team lead's first objection,
one with paying customers and monthly revenue its second, and numbers raise its score. Each step
saves a screenshot under tests/artifacts/; to refresh the README's, copy
tests/artifacts/screenshot-debate.png (the concession, meter in view) over docs/.
"""

import json
import os
import re
import shutil
import time
from pathlib import Path

import pytest
from werkzeug import Request, Response

from chatbot.debate import CONCEDE_AT, critic_note
from serving.judge import (
    Critic,
    Turn,
    apply_rules,
    judge_messages,
    judge_schema,
    parse_judgement,
    seed_ledger,
)
from serving.persona import load_personas
from serving.prompting import GoalCard
from tests import test_e2e_browser as e2e
from tests.ollama_wire import chat_line

pytestmark = pytest.mark.browser  # no `model` mark: nothing here runs the Gemma GGUF

browser, new_page, page = e2e.browser, e2e.new_page, e2e.page  # the browser fixtures

CRITIC_MODEL = "polaris-critics:latest"
JUDGE_MODEL = "qwen2.5:7b-instruct"
MAX_TOKENS = 96
N_CTX = 8192
LEAD, REALIST = "team-lead", "calm-realist"
PANEL = [LEAD, REALIST]

GOAL = GoalCard(title="회사를 그만두고 1인 개발 스튜디오 차리기",
                constraints="가족 생활비 월 160만 원, 6개월 안에 결정",
                evidence="사이드 프로젝트 앱 2개 출시")
OPENING = "다음 달에 회사를 그만두고 혼자 개발 스튜디오를 차릴 거예요. 정말 해 보고 싶어요."
MONEY = "퇴사 자금으로 3천만 원을 모았고 월 고정비가 160만 원이라 18개월 runway가 있어요."
MARKET = "유료 고객 3명이 매달 150만 원씩 내고 있어서 석 달째 월 매출 450만 원이에요."
PLAN = "손익분기는 9개월 차예요. 월별 계산표도 만들어 두었어요."

# The stand-in judge's reading of the user's words: an objection is answered by a user message
# that carries all of these words; a number with a unit is evidence, and raises the team lead's
# score by the most one turn allows.
ANSWERS = {(LEAD, "o1"): ("3천만 원", "18개월"), (LEAD, "o2"): ("유료 고객", "월 매출")}
REASONS = {(LEAD, "o1"): "현금 3천만 원, 18개월 runway", (LEAD, "o2"): "유료 고객 3명, 월 매출 450만 원"}
NUMBERS = re.compile(r"\d+\s*(?:천만 원|만 원|개월|명)")
STEP = 25
ASKS_MARKET = "돈을 내는 고객과 월 매출 기록이 있습니까?"
MARKET_OBJECTION = "돈을 내는 고객과 월 매출 기록이 있는가"
CONCESSION_ORDER = "사용자는 당신의 반론에 모두 근거로 답했습니다"  # chatbot/debate.py critic_note
LEAD_CONCEDES = ("좋습니다. 현금 18개월, 유료 고객 3명, 손익분기 9개월 차까지 숫자로 보여 "
                 "주셨으니 이 북극성은 인정하겠습니다. 다만 고객 이탈률은 매달 보고해 주세요.")


def _lines(model: str, text: str) -> bytes:
    """An Ollama /api/chat NDJSON stream carrying `text` in two pieces."""
    cut = len(text) // 2
    return b"".join([
        chat_line(model, text[:cut]), chat_line(model, text[cut:]),
        chat_line(model, done=True, created_at="2026-11-22T10:00:01Z", eval_count=24,
                  eval_duration=300_000_000, prompt_eval_count=400, total_duration=500_000_000),
    ])


def _same(body: dict, expected: dict) -> None:
    """The request is exactly the expected one; the message names what differs (it is raised
    in the server's thread, where pytest cannot print a diff)."""
    wrong = {key: (body.get(key, "<missing>"), expected.get(key, "<unexpected>"))
             for key in body.keys() | expected.keys() if body.get(key) != expected.get(key)}
    assert not wrong, f"request fields differ (sent, expected): {str(wrong)[:3000]}"


class StandIn:
    """Ollama for the judge and the critics, with its own record of the debate (what the user
    said, what the critics answered, the ledger after each verdict) to check requests against."""

    def __init__(self):
        self.personas = load_personas()
        self.critics = [Critic.from_persona(self.personas[p]) for p in PANEL]
        self.ledger = seed_ledger(self.critics)
        self.turns: list[Turn] = []
        self.said = ""
        self.judged = 0
        self.spoke: list[str] = []  # critics in the order they were asked
        self.told_to_concede: list[tuple[int, str]] = []  # (user turn, critic)

    def user_says(self, text: str) -> None:
        self.said = text
        self.turns.append(Turn("user", text))

    def chat(self, request: Request) -> Response:
        body = json.loads(request.get_data())
        if "format" in body:
            return Response(_lines(JUDGE_MODEL, self._judge(body)),
                            content_type="application/x-ndjson")
        return Response(_lines(CRITIC_MODEL, self._critic(body)),
                        content_type="application/x-ndjson")

    def _judge(self, body: dict) -> str:
        _same(body, {
            "model": JUDGE_MODEL,
            "messages": judge_messages(GOAL, self.critics, self.turns, self.ledger),
            "stream": True,
            "format": judge_schema(self.ledger),
            "options": {"temperature": 0, "top_p": 1, "top_k": 1, "min_p": 0,
                        "repeat_penalty": 1, "seed": 0, "num_predict": 512, "num_ctx": N_CTX},
            "keep_alive": "10m",
        })
        said = [t.content for t in self.turns if t.role == "user"]
        lead_asked = any(t.persona == LEAD and ASKS_MARKET in t.content for t in self.turns)
        verdict = {}
        for pid, entry in self.ledger.items():
            states = {}
            for o in entry.objections:
                words = ANSWERS.get((pid, o.id), ())
                answered = bool(words) and any(all(w in text for w in words) for text in said)
                states[o.id] = ({"state": "addressed", "reason": REASONS[(pid, o.id)]} if answered
                                else {"state": o.state, "reason": o.reason or "아직 근거가 없다"})
            new = []
            if pid == LEAD and lead_asked and MARKET_OBJECTION not in {
                    o.text for o in entry.objections}:
                new.append({"category": "market", "text": MARKET_OBJECTION})
            rise = STEP if pid == LEAD and NUMBERS.search(self.said) else 0
            verdict[pid] = {"objections": states, "new_objections": new,
                            "score": entry.score + rise}
        text = json.dumps(verdict, ensure_ascii=False)
        self.ledger, notes = apply_rules(self.ledger, parse_judgement(text, PANEL))
        assert notes == []  # the verdict needed no correction: the meter shows it as given
        self.judged += 1
        return text

    def _critic(self, body: dict) -> str:
        pid = PANEL[len(self.spoke) % len(PANEL)]  # "all": everyone answers, in panel order
        persona = self.personas[pid]
        messages = body.pop("messages")
        _same(body, {"model": CRITIC_MODEL, "stream": True, "keep_alive": "10m",
                     "options": {"temperature": 0.8, "top_p": 0.95, "top_k": 40, "min_p": 0.05,
                                 "repeat_penalty": 1.1, "num_predict": MAX_TOKENS,
                                 "num_ctx": N_CTX}})
        note = critic_note(self.ledger[pid], persona, GOAL)
        assert messages[0] == {"role": "system", "content": f"{persona.system_prompt.strip()}"
                               f"\n\n{GOAL.as_prompt()}\n\n{note}"}
        assert messages[-1]["role"] == "user" and self.said in messages[-1]["content"]
        self.spoke.append(pid)
        entry = self.ledger[pid]
        if CONCESSION_ORDER in messages[0]["content"]:
            self.told_to_concede.append((self.judged, pid))
            assert f'북극성 "{GOAL.title}"' in messages[0]["content"]
            assert " ".join(persona.concession.split()) in " ".join(messages[0]["content"].split())
            reply = LEAD_CONCEDES
        elif pid == REALIST:
            reply = ("마음은 충분히 이해해요. 그래도 월급을 두고 바로 뛰어드는 건 위험해요. "
                     "회사를 다니면서 작게 먼저 검증해 보면 어때요?")
        elif not entry.all_resolved and entry.open[0].id == "o1":
            reply = f"의지는 알겠습니다. 그런데 {ASKS_MARKET}"
        elif not entry.all_resolved:
            reply = "현금은 확인했습니다. 하지만 돈을 내는 고객이 없으면 그 18개월은 버티는 시간일 뿐입니다."
        else:
            reply = "고객과 매출은 확인했습니다. 손익분기는 언제로 보십니까?"
        self.turns.append(Turn("assistant", reply, pid))
        return reply


@pytest.fixture(scope="module")
def debate_server(tmp_path_factory, make_httpserver):
    """`polaris run` with the judge on and the judge and critics on the Ollama stand-in."""
    folder = tmp_path_factory.mktemp("e2e-debate")
    database_url = f"sqlite:///{folder / 'data' / 'polaris.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
    env.update(POLARIS_DATABASE_URL=database_url, POLARIS_DATA_DIR=str(folder / "data"),
               POLARIS_BACKEND="ollama", POLARIS_MODEL=CRITIC_MODEL, POLARIS_STRATEGY="system",
               POLARIS_OLLAMA_HOST=make_httpserver.url_for("/").rstrip("/"),
               POLARIS_MAX_TOKENS=str(MAX_TOKENS), POLARIS_N_CTX=str(N_CTX),
               POLARIS_JUDGE="true", POLARIS_JUDGE_BACKEND="ollama",
               POLARIS_JUDGE_MODEL=JUDGE_MODEL)
    with e2e.polaris_server(folder, env) as url:
        yield e2e.Server(url, database_url, env)


def _serve(httpserver) -> StandIn:
    stand_in = StandIn()
    models = {"models": [{"name": m, "model": m, "modified_at": "2026-11-22T10:00:00Z",
                          "size": 1, "digest": "a" * 64} for m in (CRITIC_MODEL, JUDGE_MODEL)]}
    httpserver.expect_request("/api/version", method="GET").respond_with_json(
        {"version": "0.12.6"})
    httpserver.expect_request("/api/tags", method="GET").respond_with_json(models)
    httpserver.expect_request("/api/ps", method="GET").respond_with_json({"models": []})
    httpserver.expect_request("/api/chat", method="POST").respond_with_handler(stand_in.chat)
    return stand_in


def _turn(page, server, httpserver, stand_in: StandIn, session_id: int, text: str) -> None:
    """Say `text` in the browser and wait until both critics have answered and the page has
    drawn the result (the ↻ button exists only in the run after the replies)."""
    stand_in.user_says(text)
    e2e.send(page, text)
    store = server.store()
    want = 2 * sum(t.role == "user" for t in stand_in.turns)
    deadline = time.monotonic() + e2e.TIMEOUT_MS / 1000
    replies = []
    while time.monotonic() < deadline and not (httpserver.assertions or httpserver.handler_errors):
        replies = [m for m in store.messages(session_id) if m.role == "assistant"]
        if any(m.error for m in replies) or (
                len(replies) == want and all(m.status != "interrupted" for m in replies)):
            break
        time.sleep(0.2)
    httpserver.check()  # a request the stand-in refused fails here, saying what differs
    assert [m.status for m in replies] == ["complete"] * want, [m.error for m in replies]
    e2e.wait_for_replies(page)
    assert not page.get_by_text("심판이 이번 발언을 판정하지 못했습니다").count()


def _meter(page) -> str:
    return page.locator('[data-testid="stColumn"]', has_text="🎯 설득 미터").last.inner_text()


def test_debate_meters_concession_review_progress(debate_server, page, httpserver):
    server = debate_server
    stand_in = _serve(httpserver)

    # a goal card and two critics
    e2e.open_app(page, server)
    page.get_by_label("북극성 · 이루고 싶은 목표").fill(GOAL.title)
    page.get_by_label("제약 (돈, 시간, 가족…)").fill(GOAL.constraints)
    page.get_by_label("근거 (숫자, 경험, 이미 한 일)").fill(GOAL.evidence)
    page.get_by_test_id("stMultiSelect").click()
    page.get_by_role("option", name=re.compile("차분한 현실주의자")).click()
    page.keyboard.press("Escape")
    e2e.shot(page, "debate-01-goal")
    page.get_by_role("button", name="토론 시작").click()
    page.get_by_test_id("stChatInputTextArea").wait_for()
    e2e.idle(page)
    [chat] = server.store().list_sessions()
    goal = server.store().get_goal(server.store().get_session(chat.id).goal_id)
    assert chat.personas == PANEL
    assert (goal.title, goal.constraints, goal.evidence) == (GOAL.title, GOAL.constraints,
                                                           GOAL.evidence)
    assert "팀장님 · 0점" in _meter(page) and "메시지를 보내면 심판이" in _meter(page)

    # an opening with no evidence: judged, every objection open, score 0
    _turn(page, server, httpserver, stand_in, chat.id, OPENING)
    e2e.shot(page, "debate-02-opening")
    meter = _meter(page)
    lead_o1 = stand_in.ledger[LEAD].objections[0].text
    realist_o1 = stand_in.ledger[REALIST].objections[0].text
    assert "팀장님 · 0점" in meter and "차분한 현실주의자 · 0점" in meter
    assert f"🔴 미해결: {lead_o1}" in meter and f"🔴 미해결: {realist_o1}" in meter
    assert "메시지를 보내면 심판이" not in meter
    assert len(server.store().judgements(chat.id)) == 2

    # cash and runway answer the lead's first objection; its question becomes a second one
    _turn(page, server, httpserver, stand_in, chat.id, MONEY)
    e2e.shot(page, "debate-03-money")
    meter = _meter(page)
    assert "팀장님 · 25점" in meter and "차분한 현실주의자 · 0점" in meter
    assert f"🟡 답함: {lead_o1} — {REASONS[(LEAD, 'o1')]}" in meter
    assert f"🔴 미해결: {MARKET_OBJECTION}" in meter
    assert "북극성 인정" not in meter

    # paying customers answer the second; a break-even plan lifts the score past the bar
    _turn(page, server, httpserver, stand_in, chat.id, MARKET)
    meter = _meter(page)
    assert "팀장님 · 50점" in meter and f"🟡 답함: {MARKET_OBJECTION}" in meter
    assert "북극성 인정" not in meter  # all answered, but 50 < CONCEDE_AT
    _turn(page, server, httpserver, stand_in, chat.id, PLAN)
    meter = _meter(page)
    assert 3 * STEP >= CONCEDE_AT  # three answered turns are enough to concede
    assert "팀장님 · 75점 · 🏳️ 북극성 인정" in meter
    assert "차분한 현실주의자 · 0점" in meter and "🔴 미해결" in meter
    assert stand_in.told_to_concede == [(4, LEAD)]  # only then, only the lead
    assert stand_in.judged == 4 and stand_in.spoke == PANEL * 4
    assert e2e.words(LEAD_CONCEDES) in e2e.words(e2e.chat_messages(page).nth(10).inner_text())
    page.set_viewport_size({"width": 1280, "height": 1100})
    e2e.idle(page)
    heading = page.get_by_role("heading", name="🎯 설득 미터")
    page.mouse.move(900, 500)
    page.mouse.wheel(0, heading.bounding_box()["y"] - 60)  # up to the meter, as a user would
    page.mouse.move(1260, 1090)  # off the chart and the sidebar, which draw controls on hover
    page.wait_for_timeout(500)
    shutil.copy(e2e.shot(page, "debate-04-concession"), e2e.ARTIFACTS / "screenshot-debate.png")
    page.set_viewport_size({"width": 1280, "height": 900})

    # end the session: the review quotes the strongest rebuttal and what is still open
    page.get_by_text("📝 토론 리뷰").click()
    page.get_by_role("button", name="토론 마치고 리뷰 만들기").click()
    page.get_by_role("button", name="Markdown으로 내려받기").wait_for()
    e2e.idle(page)
    assert page.get_by_role("button", name="리뷰 다시 만들기").is_visible()
    review = server.store().latest_review(chat.id)
    assert review is not None
    assert review.data["strongest"]["quote"] == MONEY
    assert [o["text"] for o in review.data["unresolved"]] == [realist_o1]
    shown = page.get_by_test_id("stExpanderDetails").filter(has_text="가장 강했던 반박")
    text = shown.inner_text()
    assert MONEY in text and realist_o1 in text
    assert shown.locator("blockquote", has_text=MONEY).count() == 1
    assert shown.locator("h4", has_text="토론 리뷰 —").count() == 1  # sized for the column
    assert shown.locator("h1, h2, h3").count() == 0
    e2e.shot(page, "debate-05-review")
    with page.expect_download() as download:
        page.get_by_role("button", name="Markdown으로 내려받기").click()
    assert download.value.suggested_filename == f"polaris-review-{chat.id}.md"
    markdown = Path(download.value.path()).read_text(encoding="utf-8")
    assert markdown == review.markdown
    assert f"**북극성**: {GOAL.title}" in markdown
    assert "| 팀장님 | 75 | 2/2 | 예 |" in markdown
    assert "| 차분한 현실주의자 | 0 | 0/1 | 아직 |" in markdown
    assert f"## 가장 강했던 반박\n\n> {MONEY}\n" in markdown
    assert f"## 가장 약했던 반박\n\n> {OPENING}\n" in markdown
    assert f"## 풀리지 않은 반론\n\n- **차분한 현실주의자** (other) {realist_o1}\n" in markdown
    e2e.idle(page)

    # the progress page lists this session on its goal, with its mean score and review
    page.get_by_role("link", name="북극성 진행").click()
    page.get_by_role("heading", name="북극성 진행").wait_for()
    e2e.idle(page)
    session = page.get_by_text(re.compile(rf"#{chat.id} .* · 평균 37\.5점"))
    session.click()
    page.get_by_test_id("stExpanderDetails").filter(has_text="가장 강했던 반박").wait_for()
    e2e.idle(page)
    e2e.shot(page, "debate-06-progress")
    assert page.get_by_text(GOAL.title).first.is_visible()
    assert page.get_by_text("이 북극성의 토론: 1회").is_visible()
    httpserver.check_assertions()
