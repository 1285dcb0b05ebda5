"""Panel debate mechanics on the scripted backend: turn order, per-critic tone/model/strategy,
the judge's ledger over turns, and the concession rules the critics are told."""

import pytest

from chatbot import debate
from chatbot.engine import ChatEngine
from serving.judge import CriticLedger, JudgeError, Objection
from serving.prompting import GoalCard
from tests.scripted import ScriptedBackend, judgement

PANEL = ("team-lead", "late-relative", "retired-developer")


@pytest.fixture
def engine(settings):
    return ChatEngine(settings)


def use(engine: ChatEngine, backend: ScriptedBackend, calls: list | None = None):
    def factory(kind, settings, model):
        if calls is not None:
            calls.append((kind, model))
        return backend
    engine._backend_factory = factory
    engine._backends.clear()
    return backend


def start(engine, personas=PANEL, **kw):
    return engine.start_session(list(personas), backend="scripted",
                                goal=GoalCard("퇴사하고 창업"), **kw)


def system_prompt(backend: ScriptedBackend) -> str:
    first = backend.requests[-1][0]
    assert first["role"] == "system"
    return first["content"]


# -- turn order ------------------------------------------------------------------------------


def test_everyone_answers_by_default_and_round_robin_takes_turns(engine):
    use(engine, ScriptedBackend())
    everyone = start(engine)
    assert debate.speakers(everyone, "안녕하세요", engine.personas, 1) == list(PANEL)
    rotating = start(engine, turn_order="round-robin")
    assert [debate.speakers(rotating, "말", engine.personas, n)[0] for n in range(1, 5)] == [
        "team-lead", "late-relative", "retired-developer", "team-lead"]
    with pytest.raises(ValueError, match="round-robin"):
        start(engine, turn_order="random")


@pytest.mark.parametrize("text, expected", [
    ("@큰이모 제 나이가 그렇게 많나요?", "late-relative"),
    ("@은퇴한 개발자 선배 기본은 다 했어요", "retired-developer"),
    ("@은퇴한개발자선배, 들어보세요", "retired-developer"),
    ("그럼 @team-lead 숫자 보시죠", "team-lead"),
    ("@팀장님: 매출표 드렸죠", "team-lead"),
])
def test_at_name_addresses_one_critic(engine, text, expected):
    use(engine, ScriptedBackend())
    chat = start(engine, turn_order="round-robin")
    assert debate.speakers(chat, text, engine.personas, 2) == [expected]


def test_at_name_of_someone_off_the_panel_falls_back_to_the_turn_order(engine):
    use(engine, ScriptedBackend())
    chat = start(engine, personas=("team-lead", "late-relative"))
    assert debate.addressed("@차분한 현실주의자 어떻게 생각해요?", chat.personas,
                            engine.personas) is None
    assert debate.speakers(chat, "이메일은 a@b.com 이에요", engine.personas, 1) == [
        "team-lead", "late-relative"]


# -- per-critic tone, model, strategy --------------------------------------------------------


def test_tone_override_reaches_only_that_critics_prompt(engine):
    backend = use(engine, ScriptedBackend(["답"]))
    chat = start(engine, personas=("team-lead", "calm-realist"))
    settings = debate.with_critic_option(chat.critic_settings, "team-lead", "tone", "에겐")
    engine.store.update_session(chat.id, critic_settings=settings)
    engine.send(chat.id, "창업할래요")
    engine.reply(chat.id, "team-lead").text()
    lead = engine.persona("team-lead")
    assert lead.tone == "테토"
    prompt = system_prompt(backend)
    assert prompt.startswith(lead.system_prompt) and debate.TONE_PROMPTS["에겐"] in prompt
    engine.reply(chat.id, "calm-realist").text()  # its own card tone: prompt unchanged
    assert not any(line in system_prompt(backend) for line in debate.TONE_PROMPTS.values())
    with pytest.raises(ValueError, match="에겐"):
        debate.with_critic_option({}, "team-lead", "tone", "시끄러운")


def test_each_critic_keeps_its_own_model_and_strategy(engine):
    calls = []
    backend = use(engine, ScriptedBackend(["답"]), calls)
    chat = start(engine, personas=("team-lead", "late-relative"), strategy="system")
    settings = debate.with_critic_option({}, "late-relative", "model", "relative-7b")
    settings = debate.with_critic_option(settings, "late-relative", "strategy", "plain")
    engine.store.update_session(chat.id, critic_settings=settings)
    engine.send(chat.id, "창업할래요")
    engine.reply(chat.id, "team-lead").text()
    assert backend.requests[-1][0]["role"] == "system"
    engine.reply(chat.id, "late-relative").text()
    assert backend.requests[-1][0]["role"] == "user"  # plain: no system prompt
    assert ("scripted", "relative-7b") in calls
    replies = [m for m in engine.store.messages(chat.id) if m.role == "assistant"]
    assert [m.strategy for m in replies] == ["system", "plain"]
    cleared = debate.with_critic_option(engine.store.get_session(chat.id).critic_settings,
                                        "late-relative", "model", None)
    assert cleared == {"late-relative": {"strategy": "plain"}}


def test_judge_uses_its_own_configured_backend_and_model(settings):
    settings.judge_backend, settings.judge_model = "judge-kind", "judge-model"
    engine = ChatEngine(settings)
    calls = []
    use(engine, ScriptedBackend(), calls)
    engine.judge_backend()
    assert calls == [("judge-kind", "judge-model")]


# -- the ledger over turns -------------------------------------------------------------------


def test_ledger_follows_the_judge_over_turns_and_is_stored(engine):
    backend = use(engine, ScriptedBackend(["답"]))
    chat = start(engine, personas=("team-lead", "late-relative"))
    backend.judgements = [
        judgement(team_lead=(20, {"o1": "addressed"}, [("money", "몇 달 버티나")]),
                  late_relative=(0, {"o1": "open"})),
        judgement(team_lead=(90, {"o1": "conceded", "o2": "conceded"}),
                  late_relative=(10, {"o1": "addressed"})),
    ]
    engine.send(chat.id, "유료 고객이 12명 있어요")
    first = debate.judge_turn(engine, chat.id)
    assert [(o.id, o.state) for o in first.ledger["team-lead"].objections] == [
        ("o1", "addressed"), ("o2", "open")]
    engine.send(chat.id, "통장에 14개월치가 있어요")
    debate.judge_turn(engine, chat.id)
    ledger = debate.current_ledger(engine.store, engine.store.get_session(chat.id),
                                   engine.personas)
    lead = ledger["team-lead"]
    # bounded to +25 per turn; o2 was open, so it cannot be conceded yet
    assert lead.score == 45
    assert [(o.id, o.state) for o in lead.objections] == [("o1", "conceded"),
                                                         ("o2", "addressed")]
    assert ledger["late-relative"].score == 10
    rows = engine.store.judgements(chat.id)
    assert len(rows) == 4 and {r.judge_backend for r in rows} == {"scripted"}
    assert any("open cannot jump" in n for r in rows for n in r.notes)
    assert debate.score_history(rows) == [{"team-lead": 20, "late-relative": 0},
                                          {"team-lead": 45, "late-relative": 10}]
    # the judge saw the whole panel, attributed, and the ledger so far
    prompt = backend.judge_requests[1][0][1]["content"]
    assert "o2 [open] (money) 몇 달 버티나" in prompt and "[사용자] 통장에 14개월치가 있어요" in prompt


def test_a_failing_judge_leaves_the_ledger_as_it_was(engine):
    backend = use(engine, ScriptedBackend())
    chat = start(engine, personas=("team-lead",))
    backend.judgements = ["틀린 답"] * 3
    engine.send(chat.id, "들어보세요")
    with pytest.raises(JudgeError):
        debate.judge_turn(engine, chat.id)
    assert engine.store.judgements(chat.id) == []


# -- concession rules ------------------------------------------------------------------------


def entry(score, *states) -> CriticLedger:
    return CriticLedger(score, tuple(Objection(f"o{i}", f"반론{i}", "money", s)
                                     for i, s in enumerate(states, 1)))


def test_a_critic_may_concede_only_answered_objections(engine):
    persona = engine.persona("team-lead")
    note = debate.critic_note(entry(60, "open", "addressed", "conceded"), persona, None)
    keep, may, done = (note.index(text) for text in ("인정하지 말고", "인정해도 됩니다",
                                                     "다시 꺼내지"))
    assert note.index("반론1") > keep and may > note.index("반론1")
    assert may < note.index("반론2") < done < note.index("반론3")
    assert [o.id for o in debate.may_concede(entry(60, "open", "addressed"))] == ["o2"]
    assert "60" not in note  # the critic never sees its score
    assert persona.concession.strip() not in note


def test_concession_needs_every_objection_resolved_and_the_threshold(engine):
    persona = engine.persona("team-lead")
    assert not debate.concession_due(entry(95, "addressed", "open"))
    assert not debate.concession_due(entry(debate.CONCEDE_AT - 1, "addressed", "conceded"))
    assert not debate.concession_due(CriticLedger(100, ()))
    assert debate.concession_due(entry(debate.CONCEDE_AT, "addressed", "conceded"))
    note = debate.critic_note(entry(80, "conceded", "addressed"), persona,
                              GoalCard("퇴사하고 창업"))
    assert persona.concession.strip() in note and "\"퇴사하고 창업\"" in note


def test_answering_objections_leads_the_critic_to_concede(engine):
    backend = use(engine, ScriptedBackend(["현금은요?", "인정합니다.", "좋습니다."]))
    chat = start(engine, personas=("team-lead",))
    backend.judgements = [
        judgement(team_lead=(30, {"o1": "addressed"}, [("money", "현금 몇 달")])),
        judgement(team_lead=(60, {"o1": "conceded", "o2": "addressed"})),
        judgement(team_lead=(90, {"o2": "conceded"})),
    ]
    persona = engine.persona("team-lead")
    prompts = []
    for text in ("유료 고객 12명이 있습니다", "현금 14개월치가 있습니다", "계산표도 드렸죠"):
        engine.send(chat.id, text)
        debate.judge_turn(engine, chat.id)
        engine.reply(chat.id, "team-lead").text()
        prompts.append(system_prompt(backend))
    assert "현금 몇 달" in prompts[0].split("인정해도 됩니다")[0]  # still open: keep pressing
    assert persona.concession.strip() not in prompts[1]  # score 50 < threshold
    assert persona.concession.strip() in prompts[2] and "퇴사하고 창업" in prompts[2]
    final = debate.current_ledger(engine.store, chat, engine.personas)["team-lead"]
    assert final.score == 75 and debate.concession_due(final)
