"""A deterministic ChatBackend for engine and UI tests: it streams scripted replies word by
word, records every request, and can fail or block at a chosen point.

Requests with a JSON schema (the judge's) never consume the critics' replies: they get the
next of `judgements` (a JSON text, or a function of (messages, schema) returning one), or,
with none scripted, a neutral judgement that keeps every objection open at score 0."""

import json
import threading
import time
from collections.abc import Callable, Iterator, Sequence

from serving.backend import collect
from serving.errors import BackendError
from serving.types import Chunk, Completion, GenerationOptions, Health, Message, ModelInfo, Stats


class ScriptedBackend:
    kind = "scripted"

    def __init__(self, replies: Sequence[str] = ("첫 번째 답변입니다.",), *, model: str = "script",
                 fail_after: int | None = None, delay_s: float = 0.0,
                 on_request: Callable[[list[Message]], None] | None = None):
        self.replies = list(replies)
        self.model = model
        self.fail_after = fail_after
        self.delay_s = delay_s
        self.on_request = on_request
        self.requests: list[list[Message]] = []
        self.started = threading.Event()
        self._turn = 0
        self.judgements: list = []
        self.judge_requests: list[tuple[list[Message], dict]] = []

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
        if options is not None and options.json_schema is not None:
            yield from self._judge(list(messages), options.json_schema)
            return
        self.requests.append(list(messages))
        if self.on_request:
            self.on_request(list(messages))
        reply = self.replies[self._turn % len(self.replies)]
        self._turn += 1
        words = reply.split(" ")
        began = time.perf_counter()
        self.started.set()
        reason = "stop"
        for i, word in enumerate(words):
            if cancel is not None and cancel.is_set():
                reason = "cancelled"
                break
            if self.fail_after is not None and i == self.fail_after:
                raise BackendError("scripted failure in the middle of the reply")
            if self.delay_s:
                time.sleep(self.delay_s)
            yield Chunk(word if i == 0 else " " + word)
        elapsed = time.perf_counter() - began
        yield Chunk(done=True, stats=Stats(prompt_tokens=sum(len(m["content"]) for m in messages),
                                           completion_tokens=len(words), ttft_s=0.001,
                                           tok_per_s=100.0, total_s=elapsed, stop_reason=reason))

    def _judge(self, messages: list[Message], schema: dict) -> Iterator[Chunk]:
        self.judge_requests.append((messages, schema))
        script = self.judgements.pop(0) if self.judgements else neutral_judgement
        text = script(messages, schema) if callable(script) else script
        yield Chunk(text)
        yield Chunk(done=True, stats=Stats(completion_tokens=len(text), stop_reason="stop"))

    def complete(self, messages, options=None) -> Completion:
        return collect(self.stream(messages, options))

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(self.model)]

    def health(self) -> Health:
        return Health(True, self.kind, "scripted test backend", (self.model,))


def neutral_judgement(messages, schema: dict) -> str:
    """Every objection the schema names kept open, every score 0, nothing new."""
    return json.dumps({
        critic: {"objections": {oid: {"state": "open", "reason": "아직 답이 없음"}
                                for oid in spec["properties"]["objections"]["properties"]},
                 "new_objections": [], "score": 0}
        for critic, spec in schema["properties"].items()
    }, ensure_ascii=False)


def judgement(**critics: tuple[int, dict[str, str]] | tuple[int, dict[str, str], list]) -> str:
    """A judge answer: judgement(team_lead=(40, {"o1": "addressed"}, [("money", "현금")]))
    (underscores in keyword names stand for hyphens in critic ids)."""
    answer = {}
    for name, spec in critics.items():
        score, states, *new = spec
        answer[name.replace("_", "-")] = {
            "objections": {oid: {"state": state, "reason": f"{oid} {state}"}
                           for oid, state in states.items()},
            "new_objections": [{"category": c, "text": t} for c, t in (new[0] if new else [])],
            "score": score,
        }
    return json.dumps(answer, ensure_ascii=False)
