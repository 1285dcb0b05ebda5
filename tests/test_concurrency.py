"""Many writers into one database, and two conversations sharing one embedded model."""

import threading
import time

import pytest

from chatbot.engine import ChatEngine
from chatbot.store import Store
from serving.settings import Settings

WRITERS = 8
MESSAGES_EACH = 200


def _run_all(threads: list[threading.Thread]) -> None:
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=300)
    assert not any(t.is_alive() for t in threads), "a writer hung"


def test_eight_writers_lose_nothing_and_never_see_a_lock_error(database_url):
    """8 threads x 200 messages, each thread with its own Store (as separate processes would
    have), all into one session of one database file."""
    chat = Store(database_url).create_session(personas=["team-lead"], backend="e", model="m",
                                              strategy="system")
    start = threading.Barrier(WRITERS)
    errors: list[BaseException] = []

    def write(worker: int) -> None:
        store = Store(database_url)
        start.wait()
        try:
            for i in range(MESSAGES_EACH):
                store.add_message(chat.id, "user", f"{worker}:{i} 북극성")
        except BaseException as exc:  # noqa: BLE001 - reported by the assertion below
            errors.append(exc)
        finally:
            store.engine.dispose()

    _run_all([threading.Thread(target=write, args=(w,)) for w in range(WRITERS)])

    assert errors == []  # in particular no "database is locked"
    stored = [m.content for m in Store(database_url).messages(chat.id)]
    assert len(stored) == WRITERS * MESSAGES_EACH == 1_600
    assert len(set(stored)) == 1_600
    for worker in range(WRITERS):  # each writer's messages in the order it wrote them
        mine = [int(c.split(" ")[0].split(":")[1]) for c in stored if c.startswith(f"{worker}:")]
        assert mine == list(range(MESSAGES_EACH))


def test_readers_see_whole_messages_while_writers_stream(database_url):
    """A reply being streamed is updated in place; a reader never sees a torn row."""
    store = Store(database_url)
    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")
    row = store.add_message(chat.id, "assistant", "", persona="team-lead", status="interrupted")
    pieces = [f"{i:04d}|" for i in range(300)]
    done = threading.Event()
    seen: list[str] = []

    def stream() -> None:
        text = ""
        for piece in pieces:
            text += piece
            store.update_message(row.id, content=text)
        store.update_message(row.id, status="complete")
        done.set()

    def read() -> None:
        reader = Store(database_url)
        while not done.is_set():
            seen.append(reader.messages(chat.id)[0].content)
        reader.engine.dispose()

    _run_all([threading.Thread(target=stream), threading.Thread(target=read)])

    full = "".join(pieces)
    assert seen and all(full.startswith(text) and len(text) % 5 == 0 for text in seen)
    final = store.messages(chat.id)[0]
    assert final.content == full and final.status == "complete"


@pytest.mark.model
def test_two_conversations_share_one_embedded_model_without_mixing(model_path, monkeypatch):
    """Two sessions chat at the same moment through one engine and one loaded llama.cpp model:
    each reply lands whole in its own session, and the model serves one at a time."""
    monkeypatch.setenv("POLARIS_MAX_TOKENS", "12")
    engine = ChatEngine(Settings())
    asks = {"team-lead": "회사를 그만두고 창업하려고요.",
            "late-relative": "서른다섯에 개발자로 전향할 거예요."}
    sessions = {pid: engine.start_session([pid]).id for pid in asks}
    for pid, text in asks.items():
        engine.send(sessions[pid], text)
    start = threading.Barrier(2)
    streamed: dict[str, list[tuple[float, str]]] = {pid: [] for pid in asks}
    errors: list[BaseException] = []

    def chat(pid: str) -> None:
        start.wait()
        try:
            for piece in engine.reply(sessions[pid], pid):
                streamed[pid].append((time.monotonic(), piece))
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    _run_all([threading.Thread(target=chat, args=(pid,)) for pid in asks])

    assert errors == []
    for pid, text in asks.items():
        user, reply = engine.store.messages(sessions[pid])
        assert (user.role, user.content) == ("user", text)
        assert reply.persona == pid and reply.status == "complete"
        assert reply.content == "".join(piece for _, piece in streamed[pid]) != ""
        assert reply.tokens and reply.tokens <= 12
    first, second = sorted(asks, key=lambda pid: streamed[pid][0][0])
    assert streamed[first][-1][0] < streamed[second][0][0]  # one generation after the other
