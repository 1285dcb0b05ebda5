"""Quality gates of the persona corpus in training/data/ (they fail the build when broken)."""

import re
from collections import Counter

import pytest

from serving.persona import STARTING_ORDER, load_persona, load_personas
from training import corpus
from training.formats import load
from training.quality import is_heldout, near_duplicates, register_report, sentences

PERSONAS = load_personas()
MIN_CONVERSATIONS, MIN_PAIRS, MIN_DEBATES, MIN_SEEDS, MIN_MENU = 240, 60, 40, 30, 150
MARKDOWN = re.compile(r"\*\*|^\s*[-*•]\s|^\s*#|^\s*\d+\.\s", re.MULTILINE)
EMOJI = re.compile("[\U0001F300-\U0001FAFF\u2600-\u27BF]")


@pytest.fixture(scope="module")
def critics():
    """persona id -> (train records, held-out records)."""
    return {pid: (load(corpus.train_path(pid), expect="chat").records,
                  load(corpus.heldout_path(pid), expect="chat").records)
            for pid in STARTING_ORDER}


def written(records):
    return [r for r in records if r.topic != corpus.CARD_TOPIC]


def assistant_turns(records):
    return [m.content for r in records for m in r.messages if m.role == "assistant"]


def test_every_data_file_validates():
    files = sorted(corpus.DATA.rglob("*.jsonl"))
    assert len(files) >= 14
    for path in files:
        assert len(load(path)) > 0, path
    assert load_persona(corpus.MENU / "menu-recommender.yaml").speech == "존댓말"


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_counts_and_multi_turn_share(critics, pid):
    records = written(critics[pid][0] + critics[pid][1])
    multi = [r for r in records if sum(m.role == "assistant" for m in r.messages) >= 2]
    assert len(records) >= MIN_CONVERSATIONS
    assert len(multi) * 3 >= len(records)
    assert all(2 <= sum(m.role == "assistant" for m in r.messages) <= 4 for r in multi)
    assert len(load(corpus.PREFERENCES / f"{pid}.jsonl", expect="preference")) >= MIN_PAIRS


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_every_conversation_starts_with_the_card_system_prompt(critics, pid):
    for record in critics[pid][0] + critics[pid][1]:
        assert record.messages[0].role == "system"
        assert record.messages[0].content == PERSONAS[pid].system_prompt, record.id


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_no_near_duplicate_openings_within_a_critic(critics, pid):
    openings = [corpus.opening(r) for r in critics[pid][0] + critics[pid][1]]
    pairs = near_duplicates(openings, threshold=0.7)
    assert [(openings[i], openings[j], round(s, 2)) for i, j, s in pairs] == []
    prompts = [p.prompt for p in load(corpus.PREFERENCES / f"{pid}.jsonl").records]
    pairs = near_duplicates(prompts, threshold=0.7)
    assert [(prompts[i], prompts[j]) for i, j, _ in pairs] == []


def test_no_two_conversations_share_an_opening(critics):
    openings = [corpus.opening(r) for pid in STARTING_ORDER
                for r in written([*critics[pid][0], *critics[pid][1]])]
    openings += [corpus.opening(r) for r in load(corpus.MENU / "conversations.jsonl").records]
    assert [text for text, n in Counter(openings).items() if n > 1] == []


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_register_consistency_is_at_least_95_percent(critics, pid):
    expected = PERSONAS[pid].speech
    turns = assistant_turns(critics[pid][0] + critics[pid][1])
    turns += [p.chosen for p in load(corpus.PREFERENCES / f"{pid}.jsonl").records]
    report = register_report(turns, expected)
    assert report.rate >= 0.95, (report.rate, report.mismatches[:10])


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_critic_replies_are_short_plain_speech(critics, pid):
    turns = assistant_turns(critics[pid][0] + critics[pid][1])
    turns += [p.chosen for p in load(corpus.PREFERENCES / f"{pid}.jsonl").records]
    assert [t for t in turns if len(sentences(t)) > 6] == []
    assert [t for t in turns if MARKDOWN.search(t) or EMOJI.search(t)] == []


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_held_out_split_is_fixed_and_disjoint(critics, pid):
    train, heldout = critics[pid]
    assert {r.id for r in train}.isdisjoint({r.id for r in heldout})
    assert {corpus.opening(r) for r in train}.isdisjoint({corpus.opening(r) for r in heldout})
    assert all(is_heldout(corpus.opening(r)) for r in heldout)
    assert not any(is_heldout(corpus.opening(r)) for r in written(train))
    assert 0.05 <= len(heldout) / len(written(train + heldout)) <= 0.15
    assert all(r.topic != corpus.CARD_TOPIC for r in heldout)


@pytest.mark.parametrize("pid", STARTING_ORDER)
def test_card_few_shot_examples_come_from_the_corpus(critics, pid):
    pairs = {(r.messages[1].content, r.messages[2].content)
             for r in critics[pid][0] if len(r.messages) == 3}
    missing = [e.user for e in PERSONAS[pid].examples if (e.user, e.assistant) not in pairs]
    assert missing == []


def test_judge_set_covers_weak_to_strong_arguments():
    debates = load(corpus.JUDGE_SET, expect="debate").records
    assert len(debates) >= MIN_DEBATES
    assert len({d.goal.title for d in debates}) == len(debates)
    assert sum(len(d.critics) > 1 for d in debates) >= len(debates) // 2
    appearances = Counter(c for d in debates for c in d.critics)
    assert set(appearances) == set(STARTING_ORDER) and min(appearances.values()) >= 8
    quality = Counter(d.quality for d in debates)
    assert min(quality.values()) >= len(debates) // 4
    for d in debates:
        assert 4 <= len(d.turns) <= 8, d.id
        spoke = {t.persona for t in d.turns if t.role == "assistant"}
        assert spoke == set(d.critics), d.id
        for label in d.labels.values():
            if d.quality == "weak":
                assert label.score <= 35, d.id
            if d.quality == "strong":
                assert label.score >= 60, d.id
            if label.score < 90:
                assert any(o.state != "conceded" for o in label.objections), d.id
        for t in d.turns:
            if t.role == "assistant":
                report = register_report([t.content], PERSONAS[t.persona].speech)
                assert report.rate == 1.0, (d.id, t.content)


def test_menu_assistant_data():
    card = load_persona(corpus.MENU / "menu-recommender.yaml")
    seeds = load(corpus.MENU / "seed_tasks.jsonl", expect="seed").records
    assert len(seeds) >= MIN_SEEDS and len({s.id for s in seeds}) == len(seeds)
    assert any(s.is_classification for s in seeds)
    chats = load(corpus.MENU / "conversations.jsonl", expect="chat").records
    assert len(chats) >= MIN_MENU
    assert all(r.messages[0].content == card.system_prompt for r in chats)
    openings = [corpus.opening(r) for r in chats]
    assert near_duplicates(openings) == []
    assert register_report(assistant_turns(chats), "존댓말").rate >= 0.95
