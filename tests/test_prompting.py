import pytest

from serving.persona import load_personas
from serving.prompting import GoalCard, build_messages, trim_history
from serving.templates import FAMILIES, get_template

PERSONA = load_personas()["retired-developer"]
HISTORY = [
    {"role": "user", "content": "더이상 회사에 못있겠어."},
    {"role": "assistant", "content": "그래서 뭘 할 건데?"},
    {"role": "user", "content": "이번 달 안에 진짜로 차린다."},
]
GOAL = GoalCard("창업", constraints="모은 돈 2천만 원", evidence="")


def test_plain_sends_only_the_conversation():
    assert build_messages("plain", PERSONA, HISTORY, goal=GOAL) == HISTORY


def test_system_puts_persona_and_goal_first():
    messages = build_messages("system", PERSONA, HISTORY, goal=GOAL)
    assert messages[0]["role"] == "system"
    assert messages[0]["content"].startswith(PERSONA.system_prompt)
    assert "목표: 창업" in messages[0]["content"] and "제약: 모은 돈 2천만 원" in messages[0]["content"]
    assert "근거" not in messages[0]["content"]  # empty fields are left out
    assert messages[1:] == HISTORY


@pytest.mark.parametrize("k", [0, 2, 5])
def test_fewshot_adds_k_example_turns(k):
    messages = build_messages("fewshot", PERSONA, HISTORY, k=k)
    shots = messages[1:1 + 2 * k]
    assert [m["content"] for m in shots[::2]] == [e.user for e in PERSONA.examples[:k]]
    assert [m["content"] for m in shots[1::2]] == [e.assistant for e in PERSONA.examples[:k]]
    assert messages[1 + 2 * k:] == HISTORY


def test_fewshot_uses_retrieved_examples_when_given():
    picked = PERSONA.examples[3:4]
    messages = build_messages("fewshot", PERSONA, HISTORY, examples=picked)
    assert messages[1]["content"] == picked[0].user and len(messages) == 3 + len(HISTORY)


def test_finetuned_uses_the_short_prompt():
    messages = build_messages("finetuned", PERSONA, HISTORY, goal=GOAL)
    assert messages[0]["content"].startswith(PERSONA.short_prompt())
    assert PERSONA.system_prompt not in messages[0]["content"]


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("strategy", ["system", "fewshot", "finetuned"])
def test_persona_text_survives_every_template(family, strategy):
    """Whatever the family does with system roles, the persona prompt reaches the model
    once, and the user's last words sit in the final user turn."""
    messages = build_messages(strategy, PERSONA, HISTORY, goal=GOAL)
    text = get_template(family).render_text(messages)
    assert text.count(messages[0]["content"]) == 1
    assert text.count("이번 달 안에 진짜로 차린다.") == 1
    assert text.rindex("이번 달 안에 진짜로 차린다.") > text.rindex("그래서 뭘 할 건데?")


def test_bad_calls_are_refused():
    with pytest.raises(ValueError, match="strategy"):
        build_messages("magic", PERSONA, HISTORY)
    with pytest.raises(ValueError, match="user"):
        build_messages("system", PERSONA, HISTORY[:2])


def test_trim_history_keeps_recent_turns_starting_with_the_user():
    long = [{"role": "user" if i % 2 == 0 else "assistant", "content": f"{i}" * 10}
            for i in range(9)]
    kept = trim_history(long, max_chars=35)
    assert kept[-1] == long[-1] and kept[0]["role"] == "user"
    assert sum(len(m["content"]) for m in kept) <= 35
    assert trim_history(long[-1:], max_chars=1) == long[-1:]
