"""Retrieval few-shot: BM25 over Korean morphemes picks the examples closest to the message."""

import json
import os
import time

import pytest

from chatbot.engine import ChatEngine
from serving.persona import Example, load_personas
from serving.retrieval import CORPUS_DIR, corpus_pairs, example_index, morphemes, retrieve_examples
from tests.scripted import ScriptedBackend

PERSONAS = load_personas()
MONEY = ("자금", "돈", "대출", "퇴직금", "융자", "빌려", "빚", "억", "천만", "원", "지원금", "적금")


def test_particles_and_endings_do_not_split_a_word():
    assert morphemes("창업 자금은 부모님께 빌릴 거예요") == ["창업/N", "자금/N", "부모/N", "빌리/V"]
    assert "자금/N" in morphemes("자금이 부족해요")
    assert morphemes("그냥 해요.") == []  # adverbs and light verbs say nothing about the topic


def _about(examples, words) -> list[bool]:
    return [any(w in e.user + e.assistant for w in words) for e in examples]


@pytest.mark.parametrize("persona_id", list(PERSONAS))
def test_a_message_about_startup_money_retrieves_money_pairs(persona_id):
    persona = PERSONAS[persona_id]
    picked = retrieve_examples(persona, "창업 자금은 퇴직금이랑 대출로 마련하려고요", 5)
    assert len(picked) == 5
    money = _about(picked, MONEY)
    assert money[:2] == [True, True], [e.user for e in picked]
    assert sum(money) > sum(_about(persona.examples[:5], MONEY))


@pytest.mark.parametrize("persona_id", list(PERSONAS))
def test_a_youtube_message_retrieves_youtube_pairs(persona_id):
    persona = PERSONAS[persona_id]
    picked = retrieve_examples(persona, "회사 다니면서 유튜브 채널을 키워 보려고요", 5)
    assert sum(_about(picked, ["유튜브"])) >= 4, [e.user for e in picked]
    assert not any(_about(persona.examples, ["유튜브"]))


def test_the_exact_question_from_the_corpus_comes_first():
    ask = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."
    (best, score), *_ = example_index(PERSONAS["team-lead"]).scored(ask, 5)
    assert best.user == ask and score > 0


def test_corpus_pairs_come_from_every_user_turn_and_skip_bad_lines(tmp_path):
    path = tmp_path / "someone.train.jsonl"
    rows = [
        {"messages": [{"role": "system", "content": "규칙"}, {"role": "user", "content": "질문1"},
                      {"role": "assistant", "content": "답1"},
                      {"role": "user", "content": "질문2"},
                      {"role": "assistant", "content": "답2"}]},
        {"messages": [{"role": "user", "content": "답 없는 질문"}]},
    ]
    lines = [json.dumps(r, ensure_ascii=False) for r in rows] + ["{not json", "[1, 2]"]
    path.write_text("\n".join(lines) + "\n", encoding="utf-8")
    assert corpus_pairs(path) == [Example(user="질문1", assistant="답1"),
                                  Example(user="질문2", assistant="답2")]


def test_a_persona_without_a_corpus_ranks_its_card_examples(tmp_path):
    persona = PERSONAS["calm-realist"].model_copy(update={"id": "my-own-critic"})
    card = persona.examples
    index = example_index(persona, corpus_dir=tmp_path)
    assert index.examples == card
    target = card[3]
    query = " ".join(w for w in target.user.split() if len(w) > 1)
    assert index.search(query, 2)[0] == target
    # nothing in common: the card's own examples, in card order
    assert index.search("ㅋㅋㅋ", 5) == card[:5]


def test_the_index_is_built_once_and_rebuilt_when_the_corpus_changes(tmp_path):
    persona = PERSONAS["team-lead"]
    corpus = tmp_path / "team-lead.train.jsonl"
    corpus.write_bytes((CORPUS_DIR / "team-lead.train.jsonl").read_bytes())
    first = example_index(persona, tmp_path)
    assert example_index(persona, tmp_path) is first
    with corpus.open("a", encoding="utf-8") as handle:
        handle.write(json.dumps({"messages": [
            {"role": "user", "content": "양봉장 창업할 거예요"},
            {"role": "assistant", "content": "벌통 몇 개로 시작합니까?"}]}, ensure_ascii=False))
        handle.write("\n")
    os.utime(corpus, ns=(time.time_ns(), time.time_ns() + 10**9))
    rebuilt = example_index(persona, tmp_path)
    assert rebuilt is not first and len(rebuilt.examples) == len(first.examples) + 1
    assert rebuilt.search("양봉장 창업", 1)[0].assistant == "벌통 몇 개로 시작합니까?"


def test_build_and_query_times(capsys):
    persona = PERSONAS["retired-developer"]
    index = example_index(persona)
    started = time.perf_counter()
    for _ in range(20):
        index.search("부트캠프 다녀서 개발자로 전직하려고", 5)
    per_query = (time.perf_counter() - started) / 20
    with capsys.disabled():
        print(f"\n[retrieval] {persona.id}: {len(index.examples)} pairs, "
              f"build {index.build_s:.2f} s, query {per_query * 1000:.1f} ms")
    assert per_query < 0.1  # the UI asks on every fewshot turn
    assert index.build_s < 30


def test_the_engine_sends_retrieved_examples_with_fewshot(settings):
    backend = ScriptedBackend(["근거는요?"])
    engine = ChatEngine(settings, backend_factory=lambda kind, s, model: backend)
    chat = engine.start_session(["team-lead"], backend="scripted", strategy="fewshot")
    engine.send(chat.id, "유튜브 채널 하려고 퇴사할래요")
    engine.reply(chat.id).text()
    (request,) = backend.requests
    shown = [m["content"] for m in request[1:-1:2]]
    assert len(shown) == 5 and all("유튜브" in text for text in shown), shown
    assert request[-1] == {"role": "user", "content": "유튜브 채널 하려고 퇴사할래요"}
