"""Retrieval few-shot: the k example exchanges most like the user's message, per critic.

The corpus of a critic is its training conversations (training/data/critics/<id>.train.jsonl,
chat JSONL: every user turn and the assistant turn after it make one example pair) plus the
card's own examples. Pairs are ranked with BM25 over Korean morphemes (Kiwi): Korean glues
particles and endings onto words, so whitespace tokens would rarely match ("자금은" vs "자금이");
content morphemes do. A critic without a corpus (an imported card) ranks its card's examples.

Indexes are built lazily, once per critic and corpus file version, and kept for the process;
the Kiwi analyser is loaded once on first use (~1-3 s), after which a query takes milliseconds.
"""

import json
import threading
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from itertools import pairwise
from pathlib import Path

from serving.persona import Example, Persona

# The shipped corpus sits beside the training package; serving reads it as plain data.
CORPUS_DIR = Path(__file__).resolve().parents[1] / "training" / "data" / "critics"
# Content morphemes: nouns, verb/adjective stems, roots, foreign words and numbers. Particles
# (J*), endings (E*), affixes, pronouns, adverbs and punctuation carry no topic.
CONTENT_TAGS = ("NNG", "NNP", "NR", "VV", "VA", "XR", "SL", "SH", "SN")
# Light verbs and adjectives found in nearly every sentence; in short documents BM25 would
# still let one of them outrank a real topic word.
LIGHT = frozenset(f"{stem}/V" for stem in (
    "하", "되", "있", "없", "받", "보", "가", "오", "주", "같", "않", "알", "싶", "말", "들",
    "나", "두", "놓", "지", "내", "이", "그렇", "이렇", "어떻", "모르", "괜찮", "좋"))
# The user's side decides what an exchange is about; the critic's side adds topic words
# (the numbers and risks it names), so it counts once and the user's turn twice.
USER_WEIGHT = 2

_KIWI = None
_KIWI_LOCK = threading.Lock()
_INDEXES: dict[tuple, "ExampleIndex"] = {}
_INDEX_LOCK = threading.Lock()


def _kiwi():
    global _KIWI
    if _KIWI is None:
        with _KIWI_LOCK:
            if _KIWI is None:
                from kiwipiepy import Kiwi  # core dependency; imported late (slow to load)

                _KIWI = Kiwi()
    return _KIWI


def morphemes(text: str) -> list[str]:
    """The content morphemes of `text`, as `form/tag` (verb stems keep their tag so that
    '차리/VV' and a noun spelled alike stay apart)."""
    return _content(_kiwi().tokenize(text))


def _content(tokens) -> list[str]:
    terms = (f"{t.form}/{t.tag[0]}" for t in tokens if t.tag in CONTENT_TAGS)
    return [term for term in terms if term not in LIGHT]


def _morphemes_many(texts: Sequence[str]) -> list[list[str]]:
    """Like `morphemes` for many texts at once (Kiwi analyses a batch much faster)."""
    return [_content(tokens) for tokens in _kiwi().tokenize(list(texts))]


def corpus_pairs(path: Path) -> list[Example]:
    """Every (user turn, next assistant turn) of a chat JSONL file; unreadable lines are
    skipped (the data tools validate the corpus; retrieval must not break a chat over it)."""
    pairs: list[Example] = []
    with path.open(encoding="utf-8") as handle:
        for line in handle:
            try:
                messages = json.loads(line).get("messages") or []
            except (json.JSONDecodeError, AttributeError):
                continue
            for ask, answer in pairwise(messages):
                if not (isinstance(ask, dict) and isinstance(answer, dict)):
                    continue
                if ask.get("role") == "user" and answer.get("role") == "assistant":
                    user = str(ask.get("content") or "").strip()
                    reply = str(answer.get("content") or "").strip()
                    if user and reply:
                        pairs.append(Example(user=user, assistant=reply))
    return pairs


@dataclass
class ExampleIndex:
    """BM25 over one critic's example pairs."""

    persona_id: str
    examples: list[Example]
    card_examples: list[Example]
    build_s: float = 0.0
    _bm25: object = field(default=None, repr=False)

    @classmethod
    def build(cls, persona: Persona, corpus: Path | None) -> "ExampleIndex":
        started = time.perf_counter()
        card = list(persona.examples)
        seen: set[str] = set()
        examples: list[Example] = []
        for example in [*card, *(corpus_pairs(corpus) if corpus else [])]:
            if example.user not in seen:
                seen.add(example.user)
                examples.append(example)
        users = _morphemes_many([e.user for e in examples])
        replies = _morphemes_many([e.assistant for e in examples])
        documents = [u * USER_WEIGHT + r for u, r in zip(users, replies, strict=True)]
        from rank_bm25 import BM25Okapi

        bm25 = BM25Okapi(documents)
        return cls(persona.id, examples, card, time.perf_counter() - started, bm25)

    def scored(self, query: str, k: int = 5) -> list[tuple[Example, float]]:
        """The k best-matching pairs with their BM25 scores (only those sharing a word)."""
        terms = morphemes(query)
        if not terms or k < 1:
            return []
        scores = self._bm25.get_scores(terms)
        best = sorted(range(len(scores)), key=lambda i: (-scores[i], i))[:k]
        return [(self.examples[i], float(scores[i])) for i in best if scores[i] > 0]

    def search(self, query: str, k: int = 5) -> list[Example]:
        """k pairs for the prompt: the best matches, topped up with the card's own examples
        when fewer than k share a word with the query."""
        chosen = [example for example, _ in self.scored(query, k)]
        for example in self.card_examples:
            if len(chosen) >= k:
                break
            if example not in chosen:
                chosen.append(example)
        return chosen[:k]


def corpus_path(persona_id: str, corpus_dir: Path | None = None) -> Path | None:
    path = (corpus_dir or CORPUS_DIR) / f"{persona_id}.train.jsonl"
    return path if path.is_file() else None


def example_index(persona: Persona, corpus_dir: Path | None = None) -> ExampleIndex:
    """The critic's index, built on first use and cached until its card or corpus changes."""
    corpus = corpus_path(persona.id, corpus_dir)
    stamp = corpus.stat().st_mtime_ns if corpus else None
    card = tuple((e.user, e.assistant) for e in persona.examples)
    key = (persona.id, str(corpus) if corpus else None, stamp, card)
    index = _INDEXES.get(key)
    if index is None:
        with _INDEX_LOCK:
            index = _INDEXES.get(key)
            if index is None:
                index = ExampleIndex.build(persona, corpus)
                for old in [k for k in _INDEXES if k[0] == persona.id]:
                    del _INDEXES[old]
                _INDEXES[key] = index
    return index


def retrieve_examples(persona: Persona, query: str, k: int = 5,
                      corpus_dir: Path | None = None) -> list[Example]:
    """The k example pairs to show `persona` before `query` (the fewshot strategy)."""
    return example_index(persona, corpus_dir).search(query, k)
