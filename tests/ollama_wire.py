"""Ollama's /api/chat stream as the server sends it (NDJSON, one object per line; see
https://github.com/ollama/ollama/blob/main/docs/api.md), for the local stand-in servers."""

import json


def chat_line(model: str, text: str = "", *, done: bool = False, reason: str = "stop",
              created_at: str = "2026-11-22T10:00:00Z", **stats: int) -> bytes:
    """One line of a chat stream. The last one has `done`, `done_reason` and the counters
    (`eval_count`, `eval_duration`, `prompt_eval_count`, `total_duration`, …) in `stats`."""
    body = {"model": model, "created_at": created_at,
            "message": {"role": "assistant", "content": text}, "done": done}
    if done:
        body |= {"done_reason": reason, **stats}
    return (json.dumps(body, ensure_ascii=False) + "\n").encode()
