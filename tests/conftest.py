import os
from pathlib import Path

import pytest

from serving.backend import register_backend
from serving.settings import Settings
from tests.pg import PostgresServer, binaries_available
from tests.scripted import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]
MODEL = ROOT / "models" / "gemma-3-270m-q4_k_m.gguf"

# The UI tests pick this backend by name; each test sets what it should say.
SCRIPTED = {"backend": ScriptedBackend()}
register_backend("scripted", lambda settings, model: SCRIPTED["backend"])


@pytest.fixture(autouse=True)
def _isolated_env(tmp_path, monkeypatch):
    """Every test gets its own data folder and database, and no .env from the checkout."""
    for key in list(os.environ):
        if key.startswith("POLARIS_"):
            monkeypatch.delenv(key)
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("POLARIS_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("POLARIS_DATABASE_URL", f"sqlite:///{tmp_path / 'data' / 'polaris.db'}")
    monkeypatch.setenv("POLARIS_MODELS_DIR", str(ROOT / "models"))


@pytest.fixture
def settings() -> Settings:
    return Settings()


@pytest.fixture
def scripted():
    """The scripted backend the 'scripted' kind returns (replace .replies etc. per test)."""
    backend = ScriptedBackend()
    SCRIPTED["backend"] = backend
    return backend


@pytest.fixture(scope="session")
def model_path() -> Path:
    if not MODEL.is_file():
        pytest.fail(f"{MODEL} is missing: run `make models` (the test suite needs the real GGUF)")
    return MODEL


@pytest.fixture(scope="session")
def postgres_server():
    """A real PostgreSQL server on 127.0.0.1 for the whole run (tests/pg.py)."""
    server = PostgresServer()
    if not server.external and not binaries_available():
        pytest.skip("PostgreSQL server binaries (initdb, pg_ctl) are not on PATH")
    server.start()
    yield server
    server.stop()


@pytest.fixture(params=["sqlite", pytest.param("postgresql", marks=pytest.mark.postgres)])
def database_url(request, tmp_path):
    """A fresh, empty database URL: a SQLite file, then a PostgreSQL database."""
    if request.param == "sqlite":
        yield f"sqlite:///{tmp_path / 'db' / 'polaris.db'}"
        return
    server = request.getfixturevalue("postgres_server")
    url = server.new_database()
    yield url
    server.drop_database(url)


@pytest.fixture
def ui_env(monkeypatch):
    """The Streamlit app on the scripted backend, with Streamlit's caches emptied around it
    (the AppTest modules use it for every test)."""
    import streamlit as st

    monkeypatch.setenv("POLARIS_BACKEND", "scripted")
    monkeypatch.setenv("POLARIS_MODEL", "script")
    st.cache_resource.clear()
    st.cache_data.clear()
    yield
    st.cache_resource.clear()
    st.cache_data.clear()


@pytest.fixture
def store():
    """The store of the test's own database (POLARIS_DATABASE_URL)."""
    from chatbot.store import Store

    return Store(os.environ["POLARIS_DATABASE_URL"])
