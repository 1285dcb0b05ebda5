import pytest

from training.quality import (
    is_heldout,
    near_duplicates,
    register_report,
    rouge_l,
    sentence_register,
    split_heldout,
    turn_register,
)


@pytest.mark.parametrize(("sentence", "register"), [
    ("그래서 숫자로 보면요?", "존댓말"), ("그건 인정합니다.", "존댓말"), ("리스크는 뭡니까?", "존댓말"),
    ("준비됐습니까?", "존댓말"), ("몇 개월 버틸 수 있죠?", "존댓말"), ("먼저 해 보세요.", "존댓말"),
    ("이미 늦었어.", "반말"), ("기본부터 해!", "반말"), ("그게 진짜 실력이니까.", "반말"),
    ("난 모르겠다…", "반말"), ("뭘 할 건데?", "반말"), ("\"네\" 하면 끝이야.", "반말"),
    ("OK!", None), ("", None),
])
def test_sentence_register(sentence, register):
    assert sentence_register(sentence) == register


def test_a_turn_is_judged_by_its_last_sentence():
    assert turn_register("그건 인정합니다. 근데 아직 멀었어.") == "반말"
    assert turn_register("그래? 좋아. 그럼 보여 주세요. 🙂") == "존댓말"
    report = register_report(["알겠어.", "좋아요.", "그래."], "반말")
    assert (report.turns, report.matching, report.mismatches) == (3, 2, ("좋아요.",))
    assert report.rate == pytest.approx(2 / 3)


def test_rouge_l_works_on_hangul_characters():
    assert rouge_l("회사를 그만두고 창업할래요", "회사를 그만두고 창업할래요") == 1.0
    assert rouge_l("회사를 그만두고 창업할래요", "유학을 가고 싶어") < 0.3


def test_near_duplicates_finds_exactly_the_close_pairs():
    texts = ["저 회사 그만두고 창업하려고요.", "유학 가려고 해요.", "저 회사 그만두고 창업하려구요.",
             "회사", "카페를 차리고 싶어요"]
    assert [(i, j) for i, j, _ in near_duplicates(texts)] == [(0, 2)]
    brute = [(i, j) for i in range(5) for j in range(i + 1, 5) if rouge_l(texts[i], texts[j]) >= 0.7]
    assert brute == [(0, 2)]


def test_split_is_stable_and_respects_keep_in_train():
    items = [f"opening {i}" for i in range(1000)]
    train, heldout = split_heldout(items, key=str)
    assert 70 <= len(heldout) <= 130 and set(train).isdisjoint(heldout)
    _, more_heldout = split_heldout(items + ["new one", "another"], key=str)
    assert set(heldout) <= set(more_heldout)  # adding data never moves old items
    assert all(is_heldout(i) for i in heldout)
    kept_train, kept_heldout = split_heldout(items, key=str, keep_in_train=lambda i: True)
    assert kept_heldout == [] and kept_train == items
