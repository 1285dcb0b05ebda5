"""OllamaBackend against a local HTTP server that speaks Ollama's REST API (docs/api.md)."""

import base64
import itertools
import json
import socket
import threading
import time

import pytest
from werkzeug import Request, Response

from serving.backend import create_backend
from serving.errors import BackendBusy, BackendError, BackendUnavailable, ModelNotFound
from serving.ollama_backend import OllamaBackend, iter_ndjson
from serving.settings import Settings
from serving.types import GenerationOptions

MODEL = "gemma3-critic:latest"
MESSAGES = [
    {"role": "system", "content": "너는 팀장님이다."},
    {"role": "user", "content": "회사를 그만두고 창업할까요?"},
]
NDJSON = "application/x-ndjson"


def piece(text: str) -> dict:
    return {
        "model": MODEL,
        "created_at": "2026-11-22T10:00:00Z",
        "message": {"role": "assistant", "content": text},
        "done": False,
    }


def done_line(reason: str = "stop", eval_count: int = 3) -> dict:
    return {
        "model": MODEL,
        "created_at": "2026-11-22T10:00:01Z",
        "message": {"role": "assistant", "content": ""},
        "done": True,
        "done_reason": reason,
        "total_duration": 900_000_000,
        "load_duration": 100_000_000,
        "prompt_eval_count": 21,
        "prompt_eval_duration": 50_000_000,
        "eval_count": eval_count,
        "eval_duration": 250_000_000,
    }


def ndjson(*lines: dict) -> str:
    return "".join(json.dumps(line, ensure_ascii=False) + "\n" for line in lines)


def closed_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture
def host(httpserver) -> str:
    return httpserver.url_for("/").rstrip("/")


@pytest.fixture
def backend(host) -> OllamaBackend:
    return OllamaBackend(host=host, model=MODEL, keep_alive="10m", num_ctx=2048, timeout=10)


def test_stream_sends_the_documented_chat_request(httpserver, backend):
    options = GenerationOptions(
        max_tokens=64,
        temperature=0.3,
        top_p=0.9,
        top_k=20,
        min_p=0.1,
        repeat_penalty=1.2,
        seed=7,
        stop=("<end_of_turn>",),
    )
    expected = {
        "model": MODEL,
        "messages": MESSAGES,
        "stream": True,
        "options": {
            "temperature": 0.3,
            "top_p": 0.9,
            "top_k": 20,
            "min_p": 0.1,
            "repeat_penalty": 1.2,
            "seed": 7,
            "num_predict": 64,
            "stop": ["<end_of_turn>"],
            "num_ctx": 2048,
        },
        "keep_alive": "10m",
    }
    httpserver.expect_oneshot_request(
        "/api/chat", method="POST", json=expected,
        headers={"ngrok-skip-browser-warning": "1", "Content-Type": "application/json"},
    ).respond_with_data(
        ndjson(piece("글쎄"), piece("요, "), piece("팀장으로서"), done_line("stop", eval_count=5)),
        content_type=NDJSON,
    )

    chunks = list(backend.stream(MESSAGES, options))

    httpserver.check_assertions()
    assert [c.text for c in chunks[:-1]] == ["글쎄", "요, ", "팀장으로서"]
    assert all(not c.done for c in chunks[:-1])
    final = chunks[-1]
    assert final.done and final.text == ""
    assert final.stats.prompt_tokens == 21
    assert final.stats.completion_tokens == 5
    assert final.stats.tok_per_s == pytest.approx(20.0)  # 5 tokens / 0.25 s
    assert final.stats.stop_reason == "stop"
    assert 0 <= final.stats.ttft_s <= final.stats.total_s


def test_defaults_leave_out_seed_and_stop_and_use_backend_num_ctx(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        ndjson(piece("네"), done_line()), content_type=NDJSON
    )

    backend.complete(MESSAGES)

    sent = json.loads(httpserver.log[0][0].data)
    assert sent["options"] == {
        "temperature": 0.8,
        "top_p": 0.95,
        "top_k": 40,
        "min_p": 0.05,
        "repeat_penalty": 1.1,
        "num_predict": 256,
        "num_ctx": 2048,
    }


def test_options_num_ctx_overrides_the_backend_default(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        ndjson(done_line()), content_type=NDJSON
    )

    backend.complete(MESSAGES, GenerationOptions(num_ctx=8192))

    assert json.loads(httpserver.log[0][0].data)["options"]["num_ctx"] == 8192


def test_complete_joins_pieces_and_maps_length(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        ndjson(piece("이미 "), piece("늦었다"), done_line("length", eval_count=2)),
        content_type=NDJSON,
    )

    completion = backend.complete(MESSAGES, GenerationOptions(max_tokens=2))

    assert completion.text == "이미 늦었다"
    assert completion.stats.completion_tokens == 2
    assert completion.stats.stop_reason == "length"


def test_decode_rate_is_measured_when_the_server_sends_no_durations(httpserver, backend):
    final = done_line(eval_count=3)
    del final["eval_duration"]

    def slow(request: Request) -> Response:
        def lines():
            for text in ("a", "b", "c"):
                yield json.dumps(piece(text)) + "\n"
                time.sleep(0.1)
            yield json.dumps(final) + "\n"

        return Response(lines(), content_type=NDJSON)

    httpserver.expect_oneshot_request("/api/chat").respond_with_handler(slow)

    stats = backend.complete(MESSAGES).stats

    assert stats.completion_tokens == 3
    # 2 tokens after the first over ~0.3 s (the last sleep is before the done line)
    assert 4.0 < stats.tok_per_s < 10.5
    assert stats.total_s >= 0.3


def test_stream_without_done_line_raises(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        ndjson(piece("반쯤")), content_type=NDJSON
    )

    with pytest.raises(BackendError, match="ended early"):
        backend.complete(MESSAGES)


def test_error_line_mid_stream_raises_after_the_text(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        ndjson(piece("첫 "), piece("마디"), {"error": "llama runner process has terminated"}),
        content_type=NDJSON,
    )
    chunks = backend.stream(MESSAGES)

    assert next(chunks).text == "첫 "
    assert next(chunks).text == "마디"
    with pytest.raises(BackendError, match="llama runner process has terminated") as info:
        next(chunks)
    assert type(info.value) is BackendError


def test_unknown_model_is_model_not_found(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_json(
        {"error": f"model '{MODEL}' not found"}, status=404
    )

    with pytest.raises(ModelNotFound) as info:
        backend.complete(MESSAGES)

    message = str(info.value)
    assert f"ollama pull {MODEL}" in message
    assert "polaris serve register" in message


def test_busy_server_is_backend_busy(httpserver, backend, host):
    httpserver.expect_oneshot_request("/api/chat").respond_with_json(
        {"error": "server busy, please try again.  maximum pending requests exceeded"}, status=503
    )

    with pytest.raises(BackendBusy) as info:
        backend.complete(MESSAGES)

    assert host in str(info.value)
    assert "OLLAMA_NUM_PARALLEL" in str(info.value)


def test_other_http_error_carries_the_server_message(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_json(
        {"error": "invalid options: num_ctx"}, status=400
    )

    with pytest.raises(BackendError, match="invalid options: num_ctx"):
        backend.complete(MESSAGES)


def test_connection_refused_is_backend_unavailable():
    host = f"http://127.0.0.1:{closed_port()}"
    backend = OllamaBackend(host=host, model=MODEL, timeout=5)

    with pytest.raises(BackendUnavailable) as streaming:
        backend.complete(MESSAGES)
    with pytest.raises(BackendUnavailable) as listing:
        backend.models()

    for info in (streaming, listing):
        assert host in str(info.value)
        assert "POLARIS_OLLAMA_HOST" in str(info.value)
        assert "ollama serve" in str(info.value)


def test_health_reports_unreachable_without_raising():
    host = f"http://127.0.0.1:{closed_port()}"

    health = OllamaBackend(host=host, model=MODEL, timeout=5).health()

    assert health.ok is False
    assert health.backend == "ollama"
    assert host in health.detail and "POLARIS_OLLAMA_HOST" in health.detail


def tags() -> dict:
    details = {
        "parent_model": "",
        "format": "gguf",
        "family": "gemma3",
        "families": ["gemma3"],
        "parameter_size": "268.10M",
        "quantization_level": "Q4_K_M",
    }
    return {
        "models": [
            {
                "name": MODEL,
                "model": MODEL,
                "modified_at": "2026-11-20T09:00:00.000000+09:00",
                "size": 253_000_000,
                "digest": "a" * 64,
                "details": details,
            },
            {
                "name": "llama3.2:latest",
                "model": "llama3.2:latest",
                "modified_at": "2026-11-19T09:00:00.000000+09:00",
                "size": 2_019_393_189,
                "digest": "b" * 64,
                "details": {**details, "family": "llama", "families": ["llama"]},
            },
        ]
    }


def ps() -> dict:
    return {
        "models": [
            {
                "name": MODEL,
                "model": MODEL,
                "size": 400_000_000,
                "digest": "a" * 64,
                "details": tags()["models"][0]["details"],
                "expires_at": "2026-11-22T10:10:00.000000+09:00",
                "size_vram": 400_000_000,
            }
        ]
    }


def test_models_lists_tags_and_marks_running_ones_loaded(httpserver, backend):
    httpserver.expect_request("/api/tags", method="GET").respond_with_json(tags())
    httpserver.expect_request("/api/ps", method="GET").respond_with_json(ps())

    models = {m.name: m for m in backend.models()}

    assert set(models) == {MODEL, "llama3.2:latest"}
    assert models[MODEL].loaded is True
    assert models["llama3.2:latest"].loaded is False
    assert models[MODEL].size_bytes == 253_000_000
    assert models[MODEL].details["family"] == "gemma3"
    assert models[MODEL].details["quantization_level"] == "Q4_K_M"


def test_models_tolerates_a_failing_ps(httpserver, backend):
    httpserver.expect_request("/api/tags").respond_with_json(tags())
    httpserver.expect_request("/api/ps").respond_with_data("not here", status=404)

    models = backend.models()

    assert [m.name for m in models] == [MODEL, "llama3.2:latest"]
    assert not any(m.loaded for m in models)


def test_health_reports_version_and_models(httpserver, backend, host):
    httpserver.expect_request("/api/version").respond_with_json({"version": "0.12.6"})
    httpserver.expect_request("/api/tags").respond_with_json(tags())
    httpserver.expect_request("/api/ps").respond_with_json({"models": []})

    health = backend.health()

    assert health.ok is True
    assert health.backend == "ollama"
    assert health.models == (MODEL, "llama3.2:latest")
    assert "0.12.6" in health.detail and host in health.detail
    assert "not pulled" not in health.detail


def test_health_warns_when_the_model_is_not_pulled(httpserver, host):
    httpserver.expect_request("/api/version").respond_with_json({"version": "0.12.6"})
    httpserver.expect_request("/api/tags").respond_with_json(tags())
    httpserver.expect_request("/api/ps").respond_with_json({"models": []})

    health = OllamaBackend(host=host, model="qwen3:0.6b").health()

    assert health.ok is True
    assert "ollama pull qwen3:0.6b" in health.detail


def test_basic_auth_is_sent_and_the_password_never_shows(httpserver, host):
    password = "s3cret-tunnel-pw"
    token = base64.b64encode(f"polaris:{password}".encode()).decode()
    httpserver.expect_ordered_request(
        "/api/chat", headers={"Authorization": f"Basic {token}"}
    ).respond_with_data(ndjson(piece("ok"), done_line()), content_type=NDJSON)
    httpserver.expect_ordered_request("/api/chat").respond_with_json(
        {"error": "unauthorized"}, status=401
    )
    # A proxy that echoes what it got must not leak the password through our errors.
    httpserver.expect_ordered_request("/api/chat").respond_with_json(
        {"error": f"upstream rejected polaris:{password}"}, status=502
    )
    backend = OllamaBackend(host=host, model=MODEL, username="polaris", password=password)

    assert backend.complete(MESSAGES).text == "ok"
    with pytest.raises(BackendError) as refused:
        backend.complete(MESSAGES)
    with pytest.raises(BackendError) as echoed:
        backend.complete(MESSAGES)

    httpserver.check_assertions()
    assert "POLARIS_OLLAMA_USERNAME" in str(refused.value)
    assert "POLARIS_OLLAMA_PASSWORD" in str(refused.value)
    assert "upstream rejected polaris:***" in str(echoed.value)
    for info in (refused, echoed):
        assert password not in str(info.value)
        assert info.value.__cause__ is None and info.value.__suppress_context__
    assert password not in repr(backend)


def test_password_absent_from_unreachable_errors_and_health():
    password = "s3cret-tunnel-pw"
    backend = OllamaBackend(
        host=f"http://127.0.0.1:{closed_port()}", model=MODEL, username="u", password=password
    )

    with pytest.raises(BackendUnavailable) as info:
        backend.complete(MESSAGES)

    assert password not in str(info.value)
    assert password not in backend.health().detail


def test_from_settings_reads_secret_password_and_defaults_model(httpserver, host):
    settings = Settings(
        ollama_host=host,
        ollama_username="polaris",
        ollama_password="pw-from-env",
        ollama_keep_alive="30m",
        n_ctx=1024,
        model="gemma3:270m",
        _env_file=None,
    )
    token = base64.b64encode(b"polaris:pw-from-env").decode()
    httpserver.expect_oneshot_request(
        "/api/chat", headers={"Authorization": f"Basic {token}"}
    ).respond_with_data(ndjson(done_line()), content_type=NDJSON)

    backend = create_backend("ollama", settings)
    backend.complete(MESSAGES)

    sent = json.loads(httpserver.log[0][0].data)
    assert isinstance(backend, OllamaBackend)
    assert sent["model"] == "gemma3:270m"
    assert sent["keep_alive"] == "30m"
    assert sent["options"]["num_ctx"] == 1024
    assert "pw-from-env" not in repr(backend)


def test_cancel_stops_reading_and_closes_the_connection(httpserver, backend):
    sent_lines: list[int] = []

    def endless(request: Request) -> Response:
        def lines():
            for i in range(200):
                sent_lines.append(i)
                yield json.dumps(piece(f"{i} ")) + "\n"
                time.sleep(0.02)
            yield json.dumps(done_line()) + "\n"

        return Response(lines(), content_type=NDJSON)

    httpserver.expect_oneshot_request("/api/chat").respond_with_handler(endless)
    cancel = threading.Event()

    chunks = backend.stream(MESSAGES, cancel=cancel)
    first = next(chunks)
    cancel.set()
    final = next(chunks)  # the generator stays suspended here: the socket must be closed already

    assert first.text == "0 "
    assert final.done and final.stats.stop_reason == "cancelled"
    assert final.stats.completion_tokens == 1
    time.sleep(0.5)  # the server notices the closed socket on its next writes
    assert len(sent_lines) < 10
    assert list(chunks) == []


def test_cancel_set_before_the_call_sends_nothing(httpserver, backend):
    cancel = threading.Event()
    cancel.set()

    chunks = list(backend.stream(MESSAGES, cancel=cancel))

    assert len(chunks) == 1 and chunks[0].stats.stop_reason == "cancelled"
    assert httpserver.log == []


# -- NDJSON as proxies deliver it --------------------------------------------------------------

def test_lines_merged_split_and_padded_by_a_proxy_still_parse(httpserver, backend):
    lines = [piece("하나"), piece("둘"), piece("셋"), done_line(eval_count=3)]
    text = "".join(json.dumps(line, ensure_ascii=False) for line in lines[:2])  # no newline
    text += "\r\n\n" + json.dumps(lines[2], ensure_ascii=False) + "\n" + json.dumps(lines[3])
    raw = text.encode()

    def chunked(request: Request) -> Response:
        # cut the bytes at awkward places: inside objects and inside a Korean character
        cuts = [0, 7, 40, 41, 95, raw.index("셋".encode()) + 1, len(raw)]
        return Response((raw[a:b] for a, b in itertools.pairwise(cuts)), content_type=NDJSON)

    httpserver.expect_oneshot_request("/api/chat").respond_with_handler(chunked)

    chunks = list(backend.stream(MESSAGES))

    assert [c.text for c in chunks[:-1]] == ["하나", "둘", "셋"]
    assert chunks[-1].done and chunks[-1].stats.completion_tokens == 3


def test_iter_ndjson_yields_each_object_as_soon_as_it_is_complete():
    pieces = iter(['{"a": 1}{"b"', ': 2}\n', '   \n{"c": [1, ', '2]}'])
    parsed = iter_ndjson(pieces)

    assert next(parsed) == {"a": 1}
    assert next(parsed) == {"b": 2}
    assert next(parsed) == {"c": [1, 2]}
    assert list(parsed) == []


@pytest.mark.parametrize("pieces", [
    ['<html><body>ngrok</body></html>\n{"a": 1}\n'],  # a complete line that is not JSON
    ['{"a": 1}\n{"b": '],  # the stream ends inside a line
    ['[1, 2]\n'],  # JSON, but not an object
])
def test_iter_ndjson_refuses_what_is_not_ndjson(pieces):
    with pytest.raises(ValueError):
        list(iter_ndjson(pieces))


def test_an_html_page_instead_of_ndjson_says_it_is_not_ollama(httpserver, backend):
    httpserver.expect_oneshot_request("/api/chat").respond_with_data(
        "<!DOCTYPE html>\n<html><body>You are about to visit...</body></html>\n",
        content_type="text/html")

    with pytest.raises(BackendError, match="is it an Ollama server"):
        backend.complete(MESSAGES)


# -- tunnels: credentials in the URL, ngrok's header -----------------------------------------

def test_credentials_in_the_host_url_are_sent_as_basic_auth_and_hidden(httpserver):
    password = "p@ss word/with:colon"
    url = (f"http://critic:{password.replace('@', '%40').replace(' ', '%20').replace('/', '%2F')}"
           f"@127.0.0.1:{httpserver.port}")
    token = base64.b64encode(f"critic:{password}".encode()).decode()
    httpserver.expect_request(
        "/api/chat", headers={"Authorization": f"Basic {token}"}
    ).respond_with_data(ndjson(piece("ok"), done_line()), content_type=NDJSON)
    httpserver.expect_request("/api/version").respond_with_json({"error": "nope"}, status=500)

    backend = OllamaBackend(host=url, model=MODEL)

    assert backend.complete(MESSAGES).text == "ok"
    assert backend.host == f"http://127.0.0.1:{httpserver.port}"
    assert backend.username == "critic"
    health = backend.health()
    assert health.ok is False
    for text in (repr(backend), health.detail, backend.host):
        assert password not in text and "p%40ss" not in text


def test_settings_credentials_win_over_none_in_the_url(httpserver, host):
    token = base64.b64encode(b"polaris:from-settings").decode()
    httpserver.expect_request(
        "/api/chat", headers={"Authorization": f"Basic {token}"}
    ).respond_with_data(ndjson(done_line()), content_type=NDJSON)

    OllamaBackend(host=host, model=MODEL, username="polaris",
                  password="from-settings").complete(MESSAGES)

    assert len(httpserver.log) == 1


def test_every_request_skips_ngroks_browser_warning(httpserver, backend):
    header = {"ngrok-skip-browser-warning": "1"}
    httpserver.expect_request("/api/version", headers=header).respond_with_json(
        {"version": "0.12.6"})
    httpserver.expect_request("/api/tags", headers=header).respond_with_json(tags())
    httpserver.expect_request("/api/ps", headers=header).respond_with_json(ps())

    assert backend.health().ok is True
    assert backend.version() == "0.12.6"
    assert len(httpserver.log) == 4


def test_blob_presence_is_asked_with_head(httpserver, backend):
    here, missing = "sha256:" + "1" * 64, "sha256:" + "2" * 64
    httpserver.expect_request(f"/api/blobs/{here}", method="HEAD").respond_with_data("")
    httpserver.expect_request(f"/api/blobs/{missing}", method="HEAD").respond_with_data(
        "", status=404)

    assert backend.has_blob(here) is True
    assert backend.has_blob(missing) is False


def test_a_runner_without_lora_support_points_to_a_merged_gguf(httpserver, backend):
    httpserver.expect_request("/api/chat").respond_with_json(
        {"error": "failed to initialize model: loras are not yet implemented"}, status=500)

    with pytest.raises(BackendError) as info:
        backend.complete(MESSAGES)

    assert "cannot apply a LoRA ADAPTER" in str(info.value)
    assert "polaris export gguf" in str(info.value)
