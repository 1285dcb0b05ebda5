"""Faults: a backend killed or cut off mid-reply, a full disk, a read-only database.

Whatever breaks, the user's message and the reply generated so far stay in the database,
marked, and the conversation can go on (regenerate); storage failures say what to do.
"""

import os
import pwd
import shutil
import signal
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import pytest
from sqlalchemy import event
from sqlalchemy.engine import Engine
from werkzeug import Response

import chatbot.engine
from chatbot.engine import ChatEngine
from chatbot.export import session_markdown
from chatbot.store import Store, StoreError
from serving.errors import BackendError
from serving.settings import Settings
from tests.cli import polaris
from tests.ollama_wire import chat_line

ROOT = Path(__file__).resolve().parents[1]
POLARIS = Path(sys.executable).parent / "polaris"
OLLAMA_MODEL = "gemma3-critic:latest"
NDJSON = "application/x-ndjson"


def wait_for(condition, timeout_s: float, what: str):
    """Poll until condition() is truthy (returns it); fail naming `what` after timeout_s."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if value := condition():
            return value
        time.sleep(0.05)
    pytest.fail(f"timed out after {timeout_s:.0f} s waiting for {what}")


# -- the embedded backend's process is killed mid-reply ------------------------------------------

@pytest.mark.model
def test_killing_polaris_chat_mid_reply_keeps_both_messages_and_regenerate_works(
        model_path, tmp_path, monkeypatch):
    url = os.environ["POLARIS_DATABASE_URL"]
    env = {**os.environ, "POLARIS_MAX_TOKENS": "2000", "POLARIS_TEMPERATURE": "0",
           "PYTHONUNBUFFERED": "1"}
    ask = "회사를 그만두고 창업할래요. 말리지 마세요."
    chat = subprocess.Popen([str(POLARIS), "chat", "team-lead", ask], env=env, cwd=tmp_path,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    try:
        store = wait_for(lambda: _store_if_ready(url), 60, "the database to be created")

        def partial_reply():
            sessions = store.list_sessions()
            rows = store.messages(sessions[0].id) if sessions else []
            return rows if len(rows) == 2 and rows[1].content else None

        # the reply's text is flushed to the DB every 0.5 s while it streams
        user, reply = wait_for(partial_reply, 120, "the first flush of the streaming reply")
        assert chat.poll() is None, "the reply finished before it could be interrupted"
    finally:
        chat.send_signal(signal.SIGKILL)
        printed, _ = chat.communicate(timeout=30)
    assert chat.returncode == -signal.SIGKILL

    session_id = store.list_sessions()[0].id
    user, reply = store.messages(session_id)
    assert (user.role, user.content, user.status) == ("user", ask, "complete")
    assert reply.role == "assistant" and reply.status == "interrupted"
    assert reply.content and printed.decode("utf-8", "replace").startswith(reply.content[:-1])
    assert "_(중단됨)_" in session_markdown(store, session_id, {})

    monkeypatch.setenv("POLARIS_MAX_TOKENS", "8")
    engine = ChatEngine(Settings(), store=store)
    text = engine.regenerate(session_id, "team-lead").text()
    user_again, new_reply = store.messages(session_id)
    assert user_again.id == user.id and new_reply.status == "complete"
    assert new_reply.content == text and text.strip()


def _store_if_ready(url: str) -> Store | None:
    try:
        store = Store(url)
        return store if store.list_sessions() else None
    except StoreError:
        return None


# -- the Ollama server drops the connection mid-reply --------------------------------------------

def _line(text: str, done: bool = False) -> bytes:
    return chat_line(OLLAMA_MODEL, text, done=done, eval_count=3, eval_duration=250_000_000,
                     prompt_eval_count=20, total_duration=400_000_000)


def _dropping_handler(_request):
    def body():
        yield _line("숫자로 ")
        yield _line("말씀해 ")
        raise ConnectionAbortedError("the server went away")  # werkzeug cuts the connection

    return Response(body(), content_type=NDJSON)


@pytest.fixture
def ollama_engine(httpserver, monkeypatch) -> ChatEngine:
    monkeypatch.setenv("POLARIS_BACKEND", "ollama")
    monkeypatch.setenv("POLARIS_MODEL", OLLAMA_MODEL)
    monkeypatch.setenv("POLARIS_OLLAMA_HOST", httpserver.url_for("/").rstrip("/"))
    monkeypatch.setenv("POLARIS_REQUEST_TIMEOUT_S", "10")
    return ChatEngine(Settings())


def test_ollama_dropping_the_connection_keeps_the_partial_reply_and_regenerate_works(
        httpserver, ollama_engine):
    httpserver.expect_ordered_request("/api/chat", method="POST").respond_with_handler(
        _dropping_handler)
    httpserver.expect_ordered_request("/api/chat", method="POST").respond_with_data(
        b"".join([_line("다시 "), _line("물어볼게요."), _line("", done=True)]),
        content_type=NDJSON)
    engine = ollama_engine
    chat = engine.start_session(["team-lead"])
    engine.send(chat.id, "창업하려고요")

    stream = engine.reply(chat.id)
    received = []
    with pytest.raises(BackendError):
        for piece in stream:
            received.append(piece)  # noqa: PERF402 - kept up to the failure
    user, reply = engine.store.messages(chat.id)
    assert user.content == "창업하려고요" and user.status == "complete"
    assert "".join(received) == reply.content == "숫자로 말씀해 "
    assert reply.status == "interrupted" and reply.stop_reason == "error" and reply.error

    assert engine.regenerate(chat.id).text() == "다시 물어볼게요."
    user_again, new_reply = engine.store.messages(chat.id)
    assert user_again.id == user.id  # the interrupted reply was replaced, the question kept
    assert (new_reply.content, new_reply.status) == ("다시 물어볼게요.", "complete")
    httpserver.check_assertions()


# -- a full disk ---------------------------------------------------------------------------------

@pytest.fixture
def disk_fills_after():
    """Call with a page count: SQLite then answers 'database or disk is full' (SQLITE_FULL,
    what a full disk gives) once the database file would grow past it."""
    limit = {"pages": None}

    def cap(dbapi_connection, _record):
        if limit["pages"] is not None and "sqlite3" in type(dbapi_connection).__module__:
            dbapi_connection.execute(f"PRAGMA max_page_count = {limit['pages']}")

    event.listen(Engine, "connect", cap)

    def set_limit(store: Store, extra_pages: int) -> None:
        with store.engine.connect() as conn:
            used = conn.exec_driver_sql("PRAGMA page_count").scalar()
        limit["pages"] = used + extra_pages
        store.engine.dispose()  # reconnect under the cap

    yield set_limit
    event.remove(Engine, "connect", cap)


def test_full_disk_refuses_a_message_cleanly_and_keeps_the_rest(tmp_path, disk_fills_after,
                                                                  scripted):
    store = Store(f"sqlite:///{tmp_path / 'full.db'}")
    engine = ChatEngine(Settings(), store=store)
    chat = engine.start_session(["team-lead"], backend="scripted")
    engine.send(chat.id, "첫 메시지")
    disk_fills_after(store, 4)

    with pytest.raises(StoreError) as info:
        for i in range(100):
            engine.send(chat.id, f"{i}번째 긴 메시지 " + "가" * 3_000)
    assert "full" in str(info.value) and "free some space" in str(info.value)
    stored = store.messages(chat.id)
    assert stored[0].content == "첫 메시지"
    assert all(m.content.startswith(f"{i}번째") for i, m in enumerate(stored[1:]))
    assert len(stored) - 1 == i  # the refused message left nothing behind
    assert scripted.requests == []  # nothing was generated for a message that was not stored


def test_disk_filling_during_a_reply_is_a_clear_error_and_keeps_what_was_saved(
        tmp_path, disk_fills_after, scripted, monkeypatch):
    monkeypatch.setattr(chatbot.engine, "FLUSH_EVERY_S", 0.0)  # write on every piece
    scripted.replies = [" ".join(["말씀하신 숫자를 다시 확인해 봅시다" * 20] * 200)]
    store = Store(f"sqlite:///{tmp_path / 'full.db'}")
    engine = ChatEngine(Settings(), store=store)
    chat = engine.start_session(["team-lead"], backend="scripted")
    engine.send(chat.id, "창업 자금은 1년치 있어요")
    disk_fills_after(store, 12)

    with pytest.raises(StoreError, match="full: free some space"):
        engine.reply(chat.id).text()
    user, reply = store.messages(chat.id)
    assert user.content == "창업 자금은 1년치 있어요"
    assert reply.status == "interrupted" and reply.content
    assert scripted.replies[0].startswith(reply.content)


def test_cli_on_a_full_disk_exits_1_with_one_line(capsys, disk_fills_after, scripted):
    store = Store(os.environ["POLARIS_DATABASE_URL"])
    disk_fills_after(store, 1)
    code, _, err = polaris(capsys, "chat", "team-lead", "가" * 15_000, "--backend", "scripted")
    assert code == 1
    assert err.count("\n") == 1 and "is full: free some space" in err
    assert scripted.requests == []


# -- a read-only database ------------------------------------------------------------------------

def test_cli_on_a_read_only_database_exits_1_with_one_line(capsys, tmp_path, monkeypatch,
                                                          scripted):
    path = tmp_path / "ro.db"
    writable = Store(f"sqlite:///{path}")
    chat = writable.create_session(personas=["team-lead"], backend="scripted", model="m",
                                   strategy="system")
    monkeypatch.setenv("POLARIS_DATABASE_URL", f"sqlite:///file:{path}?mode=ro&uri=true")

    code, _, err = polaris(capsys, "chat", "team-lead", "안녕하세요", "--session", chat.id,
                           "--backend", "scripted")
    assert code == 1 and err.count("\n") == 1 and "read-only" in err
    code, _, err = polaris(capsys, "sessions", "delete", chat.id)
    assert code == 1 and "read-only" in err
    assert writable.messages(chat.id) == [] and writable.get_session(chat.id)
    assert scripted.requests == []


@pytest.mark.skipif(not shutil.which("setpriv"), reason="needs util-linux setpriv")
def test_a_database_file_the_user_cannot_write_is_a_clear_error(tmp_path):
    """A real permission problem: the file belongs to someone else and is not writable."""
    folder = Path(tempfile.mkdtemp(prefix="polaris-ro-"))
    try:
        folder.chmod(0o755)
        path = folder / "polaris.db"
        store = Store(f"sqlite:///{path}")
        store.create_goal("남의 파일")
        store.engine.dispose()
        for extra in ("-wal", "-shm"):
            Path(f"{path}{extra}").unlink(missing_ok=True)
        path.chmod(0o444)
        run_as = []
        if os.geteuid() == 0:  # root writes anything: try as an unprivileged user instead
            nobody = pwd.getpwnam("nobody")
            run_as = ["setpriv", f"--reuid={nobody.pw_uid}", f"--regid={nobody.pw_gid}",
                      "--clear-groups", "--"]
        env = {**os.environ, "POLARIS_DATABASE_URL": f"sqlite:///{path}", "HOME": str(folder)}
        done = subprocess.run([*run_as, str(POLARIS), "sessions", "list"], env=env,
                              cwd=folder, capture_output=True, text=True, timeout=120,
                              check=False)
        assert done.returncode == 1, done.stderr
        last = done.stderr.strip().splitlines()[-1]
        assert last.startswith("polaris: error: ")
        assert "read-only" in last or "cannot open the database" in last
        assert "Traceback" not in done.stderr
    finally:
        shutil.rmtree(folder, ignore_errors=True)
