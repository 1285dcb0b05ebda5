"""A deterministic ChatBackend for engine and UI tests: it streams scripted replies word by
word, records every request, and can fail or block at a chosen point."""

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

    def stream(self, messages: Sequence[Message], options: GenerationOptions | None = None,
               cancel: threading.Event | None = None) -> Iterator[Chunk]:
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

    def complete(self, messages, options=None) -> Completion:
        return collect(self.stream(messages, options))

    def models(self) -> list[ModelInfo]:
        return [ModelInfo(self.model)]

    def health(self) -> Health:
        return Health(True, self.kind, "scripted test backend", (self.model,))
