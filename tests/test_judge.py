"""The judge's core (serving/judge.py): schema, parsing, sanity rules, retries, and the JSON
schema reaching each backend (llama.cpp grammar, Ollama `format`, OpenAI `response_format`)."""

import json

import jsonschema
import numpy as np
import pytest

from serving.judge import (
    Critic,
    CriticLedger,
    JudgeError,
    Objection,
    Rules,
    Turn,
    apply_rules,
    judge,
    judge_messages,
    judge_schema,
    parse_judgement,
    seed_ledger,
)
from serving.ollama_backend import OllamaBackend
from serving.openai_backend import request_params
from serving.prompting import GoalCard
from serving.types import GenerationOptions
from tests.scripted import ScriptedBackend, judgement, neutral_judgement
from tests.test_ollama_backend import MESSAGES, NDJSON, done_line, ndjson, piece

CRITICS = [Critic("team-lead", "팀장님", "숫자로 정리되지 않은 계획은 계획이 아니다."),
           Critic("late-relative", "큰이모", "이미 늦었다.")]
GOAL = GoalCard("퇴사하고 창업", evidence="유료 고객 12명")
TURNS = [Turn("user", "회사를 그만두고 창업하려고요."),
         Turn("assistant", "현금으로 몇 달 버팁니까?", "team-lead"),
         Turn("user", "통장에 1년치 생활비가 있습니다.")]


def ledger(score=0, *states, critic="team-lead") -> dict[str, CriticLedger]:
    objections = tuple(Objection(f"o{i}", f"반론 {i}", "money", s)
                       for i, s in enumerate(states, 1))
    return {critic: CriticLedger(score, objections)}


def answers(text: str, critics=("team-lead",)):
    return parse_judgement(text, list(critics))


# -- schema and prompt -------------------------------------------------------------------


def test_schema_allows_exactly_the_known_ids_and_valid_states():
    schema = judge_schema(ledger(0, "open", "addressed"))
    good = json.loads(judgement(team_lead=(30, {"o1": "addressed", "o2": "conceded"},
                                           [("money", "생활비 계산")])))
    jsonschema.validate(good, schema)
    for bad in (
        {"team-lead": {**good["team-lead"], "objections": {"o1": good["team-lead"]
                                                           ["objections"]["o1"]}}},  # o2 missing
        {"team-lead": {**good["team-lead"], "objections": {
            **good["team-lead"]["objections"], "o9": {"state": "open", "reason": ""}}}},
        {"team-lead": {**good["team-lead"], "score": 101}},
        {"team-lead": {**good["team-lead"], "objections": {
            "o1": {"state": "maybe", "reason": ""}, "o2": {"state": "open", "reason": ""}}}},
        {},
    ):
        with pytest.raises(jsonschema.ValidationError):
            jsonschema.validate(bad, schema)


def test_seed_ledger_starts_each_critic_from_its_stance():
    seeded = seed_ledger(CRITICS)
    assert seeded["team-lead"] == CriticLedger(0, (Objection(
        "o1", "숫자로 정리되지 않은 계획은 계획이 아니다."),))
    assert seeded["late-relative"].objections[0].text == "이미 늦었다."


def test_prompt_attributes_every_turn_and_lists_the_ledger():
    system, user = judge_messages(GOAL, CRITICS, TURNS, seed_ledger(CRITICS))
    assert system["role"] == "system" and "JSON" in system["content"]
    text = user["content"]
    assert "목표: 퇴사하고 창업" in text and "근거: 유료 고객 12명" in text
    assert "[사용자] 회사를 그만두고 창업하려고요." in text
    assert "[팀장님] 현금으로 몇 달 버팁니까?" in text
    assert "o1 [open] (other) 숫자로 정리되지 않은 계획은 계획이 아니다." in text


# -- parsing and the sanity rules --------------------------------------------------------


@pytest.mark.parametrize("text, problem", [
    ("점수는 50점입니다", "no JSON object"),
    ('{"team-lead": {"score": 50', "no JSON object"),
    ('{"team-lead": {"score": 5,}}', "not valid JSON"),
    ('{"someone": {"score": 5}}', "no entry for team-lead"),
    ('{"team-lead": {"score": "high"}}', "team-lead.score"),
    ('{"team-lead": {"score": 5, "objections": {"o1": {"state": "won"}}}}', "state"),
])
def test_invalid_answers_say_what_is_wrong(text, problem):
    with pytest.raises(JudgeError, match=problem):
        answers(text)


def test_prose_around_the_json_is_tolerated():
    text = "```json\n" + judgement(team_lead=(10, {"o1": "open"})) + "\n```"
    assert answers(text)["team-lead"].score == 10


def test_score_change_is_bounded_per_turn_and_clamped():
    new, notes = apply_rules(ledger(20, "open"), answers(judgement(team_lead=(95, {}))))
    assert new["team-lead"].score == 45 and "bounded" in notes[0]
    new, _ = apply_rules(ledger(20, "open"), answers(judgement(team_lead=(-40, {}))),
                         Rules(max_step=None))
    assert new["team-lead"].score == 0
    new, _ = apply_rules(ledger(20, "open"), answers(judgement(team_lead=(30, {}))))
    assert new["team-lead"].score == 30


def test_unknown_ids_are_ignored_and_unmentioned_objections_keep_their_state():
    before = ledger(0, "open", "addressed")
    new, notes = apply_rules(before, answers(judgement(team_lead=(5, {"o9": "conceded"}))))
    assert [o.state for o in new["team-lead"].objections] == ["open", "addressed"]
    assert any("o9" in n for n in notes)


def test_open_objection_cannot_jump_to_conceded_and_conceded_is_final():
    before = ledger(40, "open", "addressed", "conceded")
    text = judgement(team_lead=(50, {"o1": "conceded", "o2": "conceded", "o3": "open"}))
    new, notes = apply_rules(before, answers(text))
    assert [o.state for o in new["team-lead"].objections] == ["addressed", "conceded",
                                                               "conceded"]
    assert len(notes) == 2
    # judging a whole debate at once (the evaluation) has no previous state to respect
    new, _ = apply_rules(before, answers(text), Rules(max_step=None, transitions=False))
    assert [o.state for o in new["team-lead"].objections] == ["conceded", "conceded", "open"]


def test_new_objections_get_fresh_ids_and_are_bounded():
    new_ones = [("market", "신규 고객 유입"), ("bogus", "분류가 이상한 반론"),
                ("money", "세 번째는 버려진다")]
    new, _ = apply_rules(ledger(0, "open"), answers(judgement(team_lead=(0, {}, new_ones))))
    added = new["team-lead"].objections[1:]
    assert [(o.id, o.category, o.text, o.state) for o in added] == [
        ("o2", "market", "신규 고객 유입", "open"), ("o3", "other", "분류가 이상한 반론", "open")]


# -- the call ----------------------------------------------------------------------------


def test_judge_runs_at_temperature_zero_with_the_schema():
    backend = ScriptedBackend()
    backend.judgements = [judgement(team_lead=(20, {"o1": "addressed"}),
                                    late_relative=(5, {"o1": "open"}))]
    verdict = judge(backend, goal=GOAL, critics=CRITICS, turns=TURNS)
    assert verdict.attempts == 1
    assert verdict.ledger["team-lead"].score == 20
    assert verdict.ledger["team-lead"].objections[0].state == "addressed"
    assert verdict.ledger["late-relative"].objections[0].reason == "o1 open"
    _messages, schema = backend.judge_requests[0]
    assert schema == judge_schema(seed_ledger(CRITICS))
    assert backend.requests == []  # the critics' script was not consumed


def test_invalid_json_is_retried_with_the_error_shown():
    backend = ScriptedBackend()
    backend.judgements = ["{not: json}", neutral_judgement]
    verdict = judge(backend, goal=GOAL, critics=CRITICS, turns=TURNS)
    assert verdict.attempts == 2
    retry_messages, _ = backend.judge_requests[1]
    assert retry_messages[-2] == {"role": "assistant", "content": "{not: json}"}
    assert "not valid JSON" in retry_messages[-1]["content"]


def test_judge_gives_up_after_its_retries():
    backend = ScriptedBackend()
    backend.judgements = ["nope"] * 5
    with pytest.raises(JudgeError, match="3 tries.*POLARIS_JUDGE_MODEL"):
        judge(backend, goal=GOAL, critics=CRITICS, turns=TURNS, retries=2)
    assert len(backend.judge_requests) == 3


# -- the schema reaches every backend ----------------------------------------------------

SCHEMA = judge_schema(ledger(0, "open"))


def test_ollama_sends_the_schema_as_format(httpserver):
    backend = OllamaBackend(httpserver.url_for(""), "judge:latest")
    options = GenerationOptions(max_tokens=64, temperature=0.0, seed=0, json_schema=SCHEMA)
    httpserver.expect_oneshot_request("/api/chat", method="POST").respond_with_data(
        ndjson(piece('{"a": 1}'), done_line()), content_type=NDJSON)
    assert backend.complete(MESSAGES, options).text == '{"a": 1}'
    sent = json.loads(httpserver.log[0][0].data)
    assert sent["format"] == SCHEMA
    assert sent["options"]["temperature"] == 0.0
    httpserver.clear_log()
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        ndjson(piece("네"), done_line()), content_type=NDJSON)
    backend.complete(MESSAGES, GenerationOptions())
    assert "format" not in json.loads(httpserver.log[0][0].data)


def test_openai_sends_the_schema_as_response_format():
    params = request_params("m", MESSAGES, GenerationOptions(json_schema=SCHEMA))
    assert params["response_format"] == {
        "type": "json_schema",
        "json_schema": {"name": "judgement", "schema": SCHEMA, "strict": True},
    }
    assert "response_format" not in request_params("m", MESSAGES, GenerationOptions())


@pytest.mark.model
def test_embedded_grammar_makes_even_the_base_model_answer_schema_valid_json(model_path):
    """One debate turn on the real 270M base model: its judgement is weak, but it parses."""
    from serving.embedded import EmbeddedBackend, json_grammar

    backend = EmbeddedBackend(model_path, n_ctx=2048)
    critics = CRITICS[:1]
    small = {"team-lead": CriticLedger(0, (Objection("o1", "현금으로 몇 달 버티는지", "money"),))}
    schema = judge_schema(small, max_new=0)
    assert json_grammar(schema) is json_grammar(schema)  # compiled once
    verdict = judge(backend, goal=GOAL, critics=critics, turns=TURNS, ledger=small,
                    max_tokens=160, retries=0, rules=Rules(max_new=0))
    raw = json.loads(verdict.raw)
    jsonschema.validate(raw, schema)
    assert 0 <= verdict.ledger["team-lead"].score <= 25
    assert verdict.ledger["team-lead"].objections[0].state in ("open", "addressed")


@pytest.mark.model
def test_greedy_grammar_picks_the_same_tokens_as_llama_cpps_grammar_sampler(model_path):
    """serving/constrained.py skips llama.cpp's whole-vocabulary grammar pass when a shortlist
    already holds an allowed token; the tokens must not change. A bare prompt makes the model's
    first choice break the grammar often, so the shortlists and the fallback all get used."""
    from serving.constrained import GreedyGrammar
    from serving.embedded import EmbeddedBackend, _llama_cpp, json_grammar

    loaded = EmbeddedBackend(model_path, n_ctx=2048).load()
    llm = loaded.llm
    schema = judge_schema(ledger(0, "open", "addressed"))
    grammar = json_grammar(schema)
    prompt = llm.tokenize("토론 판정: 사용자는 적금 3천만 원이 있다고 했다.\n".encode(), add_bos=True)

    def decode(processor) -> list[int]:
        out = []
        llm.reset()  # both from a whole prefill: a cached prompt shifts logits a little
        generator = llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True,
                                 grammar=None if processor else grammar,
                                 logits_processor=[processor] if processor else None)
        for token in generator:
            if token in loaded.stop_ids or len(out) == 120:
                break
            out.append(token)
        generator.close()
        return out

    theirs = decode(None)
    greedy = GreedyGrammar(_llama_cpp(), llm, grammar)
    ours = decode(greedy)
    greedy.close()
    assert ours == theirs
    assert sum(greedy.checks.values()) in (len(ours), len(ours) + 1)  # +1: the token cut off
    assert all(greedy.checks.values()), greedy.checks  # every path chose some tokens
    text = llm.detokenize(ours).decode()
    if len(ours) < 120:  # finished: the JSON is whole and valid
        jsonschema.validate(json.loads(text), schema)


@pytest.mark.model
def test_json_grammar_keeps_raw_control_characters_out_of_strings(model_path):
    """JSON forbids a raw newline inside a string; llama-cpp-python's converter allowed it and
    the judge's answer then failed to parse (seen in `polaris eval judge`, debate-041)."""
    from serving.constrained import GreedyGrammar
    from serving.embedded import EmbeddedBackend, _llama_cpp, json_grammar

    llm = EmbeddedBackend(model_path, n_ctx=512).load().llm
    grammar = json_grammar({"type": "object", "properties": {"r": {"type": "string"}},
                            "required": ["r"]})
    check = GreedyGrammar(_llama_cpp(), llm, grammar)
    opened = llm.tokenize('{"r": "가'.encode(), add_bos=False)
    check._accept_new([0])  # a one-token prompt, then the answer so far
    check._accept_new([0, *opened])
    newline, tab = (llm.tokenize(c.encode(), add_bos=False)[0] for c in ("\n", "\t"))
    letter, quote = (llm.tokenize(c.encode(), add_bos=False)[0] for c in ("나", '"'))
    ids = np.array(sorted({newline, tab, letter, quote}), dtype=np.intc)
    allowed = dict(zip(ids.tolist(), np.isfinite(check._filter(ids, np.zeros(llm.n_vocab(),
                                                                            np.float32)))))
    check.close()
    assert not allowed[newline] and not allowed[tab]
    assert allowed[letter] and allowed[quote]
