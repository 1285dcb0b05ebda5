"""Corpus quality measures: speech register, near-duplicate openings, the held-out split.

The register checker is also the evaluation metric for trained persona models: a reply
"keeps register" when its last sentence ends the way the persona's card says it speaks.
"""

import hashlib
import re
from collections import Counter
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from typing import Literal, TypeVar

from rouge_score import rouge_scorer

Register = Literal["반말", "존댓말"]
T = TypeVar("T")

_SENTENCE_END = re.compile(r"(?<=[.?!…~])\s+|\n+")
_TRAILING = re.compile(r"[^가-힣]+$")  # punctuation, quotes, brackets, emoji after the ending
_POLITE_ENDINGS = ("요", "니다", "세요", "시오", "죠")
_HANGUL_BASE, _JONGSEONG_COUNT, _BIEUP = 0xAC00, 28, 17


def _has_final_bieup(syllable: str) -> bool:
    code = ord(syllable) - _HANGUL_BASE
    return 0 <= code < 11172 and code % _JONGSEONG_COUNT == _BIEUP


def sentence_register(sentence: str) -> Register | None:
    """존댓말 for polite endings (-요, -니다, -습니까/-ㅂ니까, -세요, -시오, -죠), 반말 for any
    other Hangul ending, None when the sentence does not end in Hangul."""
    core = _TRAILING.sub("", sentence.strip())
    if not core:
        return None
    if core.endswith(_POLITE_ENDINGS):
        return "존댓말"
    if core.endswith("니까") and len(core) >= 3 and (core[-3] == "습" or _has_final_bieup(core[-3])):
        return "존댓말"
    return "반말"


def sentences(text: str) -> list[str]:
    return [s for s in _SENTENCE_END.split(text.strip()) if s.strip()]


def turn_register(text: str) -> Register | None:
    """The register a turn ends in: that of its last sentence with a Hangul ending."""
    for sentence in reversed(sentences(text)):
        found = sentence_register(sentence)
        if found:
            return found
    return None


@dataclass(frozen=True)
class RegisterReport:
    expected: Register
    turns: int
    matching: int
    mismatches: tuple[str, ...]

    @property
    def rate(self) -> float:
        return self.matching / self.turns if self.turns else 1.0


def register_report(turns: Iterable[str], expected: Register) -> RegisterReport:
    texts = list(turns)
    wrong = tuple(t for t in texts if turn_register(t) != expected)
    return RegisterReport(expected, len(texts), len(texts) - len(wrong), wrong)


class _CharTokenizer:
    """rouge-score's default tokenizer drops Hangul; compare characters instead (no spaces)."""

    def tokenize(self, text: str) -> list[str]:
        return [c for c in text if not c.isspace()]


_SCORER = rouge_scorer.RougeScorer(["rougeL"], tokenizer=_CharTokenizer())


def rouge_l(a: str, b: str) -> float:
    """Character-level ROUGE-L F1."""
    return _SCORER.score(a, b)["rougeL"].fmeasure


def near_duplicates(texts: Sequence[str], threshold: float = 0.7) -> list[tuple[int, int, float]]:
    """Pairs (i, j, score) with character ROUGE-L F1 >= threshold.

    An LCS cannot exceed the shared character counts, so pairs whose bag-of-characters bound
    is already below the threshold are skipped without computing the LCS (exact, not a guess).
    """
    tokens = [_CharTokenizer().tokenize(t) for t in texts]
    bags = [Counter(t) for t in tokens]
    pairs = []
    for i in range(len(texts)):
        for j in range(i + 1, len(texts)):
            la, lb = len(tokens[i]), len(tokens[j])
            if not la or not lb or 2 * min(la, lb) / (la + lb) < threshold:
                continue
            shared = sum((bags[i] & bags[j]).values())
            if 2 * shared / (la + lb) < threshold:
                continue
            score = rouge_l(texts[i], texts[j])
            if score >= threshold:
                pairs.append((i, j, score))
    return pairs


def is_heldout(key: str, percent: int = 10) -> bool:
    """Whether an item belongs to the held-out split: decided by its key's hash alone, so the
    split never moves when other items are added or removed."""
    return int(hashlib.sha256(key.encode("utf-8")).hexdigest(), 16) % 100 < percent


def split_heldout(items: Sequence[T], key: Callable[[T], str], percent: int = 10,
                  keep_in_train: Callable[[T], bool] = lambda _: False
                  ) -> tuple[list[T], list[T]]:
    """(train, heldout): about `percent`% of the items, chosen by is_heldout(key(item))."""
    train, heldout = [], []
    for item in items:
        held = not keep_in_train(item) and is_heldout(key(item), percent)
        (heldout if held else train).append(item)
    return train, heldout
