"""`polaris serve tunnel`: the wiring up to pyngrok's ngrok.connect (ngrok itself is out of reach
here), and the printed host line driving the Ollama backend."""

import base64
import json

import pytest
from pyngrok import conf, exception, ngrok

from serving.ollama_backend import OllamaBackend
from serving.settings import Settings
from tests.cli import polaris

TOKEN = "2abcDEFghiJKLmnoPQRstu_3vwxYZ0123456789abcdefGHIJ"
PUBLIC = "https://d1a2-35-200-1-2.ngrok-free.app"


class FakeTunnel:
    public_url = PUBLIC


@pytest.fixture
def connect(monkeypatch):
    """pyngrok's ngrok.connect replaced at that one boundary; records each call."""
    calls: list[dict] = []

    def fake_connect(addr=None, proto=None, name=None, pyngrok_config=None, **options):
        calls.append({"addr": addr, "proto": proto, "config": pyngrok_config, **options})
        return FakeTunnel()

    monkeypatch.setattr(ngrok, "connect", fake_connect)
    return calls


@pytest.fixture
def token(monkeypatch):
    monkeypatch.setenv("NGROK_AUTHTOKEN", TOKEN)
    return TOKEN


def run_tunnel(capsys, *args):
    return polaris(capsys, "serve", "tunnel", "--minutes", "0.0005", *args)


def test_tunnel_rewrites_the_host_header_and_requires_basic_auth(capsys, connect, token):
    code, out, err = run_tunnel(capsys)

    assert code == 0, err
    [call] = connect
    assert call["addr"] == "11434" and call["proto"] == "http"
    assert call["host_header"] == "localhost:11434"  # else Ollama answers 403
    [credentials] = call["basic_auth"]
    username, password = credentials.split(":")
    assert username == "polaris" and len(password) >= 16
    assert isinstance(call["config"], conf.PyngrokConfig)
    assert call["config"].auth_token == TOKEN and call["config"].config_version == "2"
    host_line = f"POLARIS_OLLAMA_HOST=https://polaris:{password}@d1a2-35-200-1-2.ngrok-free.app"
    assert out.splitlines() == [
        f"public URL: {PUBLIC}  ->  localhost:11434",
        f"basic auth: polaris / {password}  (shown once)",
        "for an Ollama tunnel, put this line in the app's .env (or export it):",
        host_line,
    ]


def test_the_token_is_never_printed_or_stored(capsys, connect, token, monkeypatch):
    def store(*args, **kwargs):
        raise AssertionError("the token must not be written to ngrok's config file")

    monkeypatch.setattr(ngrok, "set_auth_token", store)

    code, out, err = run_tunnel(capsys)

    assert code == 0
    assert TOKEN not in out + err
    assert TOKEN[:12] not in out + err


def test_each_run_generates_new_credentials(capsys, connect, token):
    run_tunnel(capsys)
    run_tunnel(capsys)

    first, second = (call["basic_auth"][0] for call in connect)
    assert first != second


def test_no_token_is_refused_before_pyngrok(capsys, connect, monkeypatch):
    monkeypatch.delenv("NGROK_AUTHTOKEN", raising=False)

    code, out, err = run_tunnel(capsys)

    assert code == 2 and out == ""
    assert "NGROK_AUTHTOKEN is not set" in err and err.count("\n") == 1
    assert connect == []


def test_insecure_opens_without_auth_and_warns(capsys, connect, token):
    code, out, err = run_tunnel(capsys, "--insecure", "--port", "8501")

    assert code == 0
    [call] = connect
    assert "basic_auth" not in call
    assert call["addr"] == "8501" and call["host_header"] == "localhost:8501"
    assert "warning: --insecure" in err and "anyone" in err
    assert f"POLARIS_OLLAMA_HOST={PUBLIC}" in out.splitlines()
    assert "basic auth" not in out


def test_a_pyngrok_failure_is_one_line_without_the_token(capsys, monkeypatch, token):
    def failing(*args, **kwargs):
        raise exception.PyngrokNgrokError(f"authentication failed: token {TOKEN} is invalid")

    monkeypatch.setattr(ngrok, "connect", failing)

    code, out, err = run_tunnel(capsys)

    assert code == 1 and out == ""
    assert "ngrok could not open a tunnel to localhost:11434" in err
    assert "token *** is invalid" in err and TOKEN not in err
    assert err.count("\n") == 1


@pytest.mark.parametrize("args", [["--port", "0"], ["--port", "70000"]])
def test_bad_ports_exit_2(capsys, connect, token, args):
    code, _, _ = run_tunnel(capsys, *args)

    assert code == 2 and connect == []


def test_the_printed_host_line_drives_the_ollama_backend(capsys, connect, token, httpserver,
                                                         monkeypatch):
    _, out, _ = run_tunnel(capsys)
    line = out.splitlines()[-1]
    password = connect[0]["basic_auth"][0].split(":", 1)[1]
    # The local test server stands in for the tunnel's public end.
    local = line.replace("https://", "http://").replace(
        "d1a2-35-200-1-2.ngrok-free.app", f"127.0.0.1:{httpserver.port}")
    key, value = local.split("=", 1)
    monkeypatch.setenv(key, value)
    expected = base64.b64encode(f"polaris:{password}".encode()).decode()
    httpserver.expect_request("/api/chat", headers={
        "Authorization": f"Basic {expected}", "ngrok-skip-browser-warning": "1",
    }).respond_with_data(
        json.dumps({"model": "m", "created_at": "2026-11-22T10:00:00Z",
                    "message": {"role": "assistant", "content": "네"}, "done": True,
                    "done_reason": "stop", "eval_count": 1}) + "\n",
        content_type="application/x-ndjson")

    backend = OllamaBackend.from_settings(Settings(_env_file=None), "m")

    assert backend.complete([{"role": "user", "content": "안녕"}]).text == "네"
    assert password not in repr(backend)
