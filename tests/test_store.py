import socket
import sqlite3
import threading

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext
from alembic.script import ScriptDirectory
from sqlalchemy import inspect
from sqlmodel import SQLModel

from chatbot.store import NotFound, Store, StoreError, alembic_config


@pytest.fixture
def store(database_url) -> Store:
    """Each test below that takes `store` runs on SQLite and on a real PostgreSQL server."""
    store = Store(database_url)
    yield store
    store.engine.dispose()


@pytest.fixture
def sqlite_store(tmp_path) -> Store:
    return Store(f"sqlite:///{tmp_path / 'db' / 'polaris.db'}")


def test_migrations_build_the_whole_schema_on_a_blank_database(store):
    with store.engine.connect() as conn:
        context = MigrationContext.configure(conn, opts={"compare_type": True})
        head = ScriptDirectory.from_config(alembic_config()).get_current_head()
        assert context.get_current_revision() == head
        assert compare_metadata(context, SQLModel.metadata) == []
    assert {"goal", "chat_session", "message", "comparison", "comparison_answer",
            "judgement", "review", "alembic_version"} <= set(
        inspect(store.engine).get_table_names())


def test_reopening_a_migrated_database_keeps_data(database_url):
    url = database_url
    first = Store(url)
    chat = first.create_session(personas=["team-lead"], backend="embedded", model="m",
                                strategy="system")
    first.add_message(chat.id, "user", "안녕하세요")
    again = Store(url)
    assert [m.content for m in again.messages(chat.id)] == ["안녕하세요"]
    first.engine.dispose()
    again.engine.dispose()


def test_sqlite_runs_in_wal_mode(sqlite_store):
    with sqlite_store.engine.connect() as conn:
        assert conn.exec_driver_sql("PRAGMA journal_mode").scalar() == "wal"
        assert conn.exec_driver_sql("PRAGMA foreign_keys").scalar() == 1


def test_session_lifecycle_and_listing(store):
    goal = store.create_goal("창업하기", evidence="첫 고객 3명")
    a = store.create_session(personas=["team-lead", "calm-realist"], backend="embedded",
                             model="gemma", strategy="fewshot", goal_id=goal.id)
    b = store.create_session(personas=["late-relative"], backend="ollama", model="x",
                             strategy="system", title="  가족 설득  ")
    store.add_message(a.id, "user", "회사를 그만둘래요")
    store.add_message(a.id, "assistant", "숫자로 보면요?", persona="team-lead")
    listed = store.list_sessions()
    assert [s.id for s in listed] == [a.id, b.id]  # a was touched last
    assert listed[0].messages == 2 and listed[0].goal_title == "창업하기"
    assert listed[0].personas == ["team-lead", "calm-realist"]
    assert listed[1].title == "가족 설득" and listed[1].messages == 0
    store.rename_session(b.id, "새 이름")
    assert store.get_session(b.id).title == "새 이름"
    store.delete_session(a.id)
    assert [s.id for s in store.list_sessions()] == [b.id]
    assert store.messages(a.id) == []
    with pytest.raises(NotFound):
        store.get_session(a.id)


def test_reading_a_page_of_messages_and_counting(store):
    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")
    for i in range(7):
        store.add_message(chat.id, "user" if i % 2 == 0 else "assistant", f"메시지 {i}",
                          persona=None if i % 2 == 0 else "team-lead", tokens=i)
    everything = store.messages(chat.id)
    assert [m.content for m in everything] == [f"메시지 {i}" for i in range(7)]
    assert [m.content for m in store.messages(chat.id, last=3)] == ["메시지 4", "메시지 5",
                                                                   "메시지 6"]
    assert store.messages(chat.id, last=3) == everything[-3:]
    assert store.messages(chat.id, last=100) == everything
    assert store.count_messages(chat.id) == 7 and store.count_messages(chat.id, "user") == 4
    row = everything[1]
    assert (row.role, row.persona, row.tokens, row.status) == ("assistant", "team-lead", 1,
                                                               "complete")
    with pytest.raises(AttributeError):  # history is read-only: updates go through the store
        row.content = "바뀜"


def test_appending_touches_the_session_and_refuses_unknown_sessions(store):
    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")
    message = store.add_message(chat.id, "user", "안녕하세요")
    assert message.id == store.messages(chat.id)[0].id
    touched = store.get_session(chat.id).updated_at
    assert touched.replace(tzinfo=None) >= chat.updated_at.replace(tzinfo=None)
    with pytest.raises(NotFound):
        store.add_message(chat.id + 1000, "user", "어디로 가나요")
    assert store.count_messages(chat.id + 1000) == 0


def test_deleting_messages_takes_their_judgements_along(store):
    from chatbot.models import Judgement

    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")
    keep = store.add_message(chat.id, "user", "첫 번째")
    drop = store.add_message(chat.id, "user", "두 번째")
    store.add_judgements([Judgement(session_id=chat.id, message_id=m.id, persona="team-lead",
                                    score=10) for m in (keep, drop)])
    store.delete_messages([drop.id])
    assert [m.id for m in store.messages(chat.id)] == [keep.id]
    assert [j.message_id for j in store.judgements(chat.id)] == [keep.id]


def test_bad_values_are_refused_without_writing(store):
    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")
    with pytest.raises(ValueError, match="title"):
        store.rename_session(chat.id, "   ")
    with pytest.raises(ValueError, match="role"):
        store.add_message(chat.id, "system", "x")
    with pytest.raises(ValueError, match="status"):
        store.add_message(chat.id, "user", "x", status="done")
    with pytest.raises(NotFound):
        store.add_message(chat.id + 99, "user", "x")
    with pytest.raises(ValueError, match="critic"):
        store.create_session(personas=[], backend="e", model="m", strategy="system")
    assert store.messages(chat.id) == []
    assert store.get_session(chat.id).title == "새 대화"


def test_concurrent_writers_lose_nothing(store):
    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")

    def write(worker: int) -> None:
        for i in range(25):
            store.add_message(chat.id, "user", f"{worker}-{i}")

    threads = [threading.Thread(target=write, args=(w,)) for w in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert len(store.messages(chat.id)) == 100


def test_read_only_database_gives_a_clear_error(tmp_path):
    path = tmp_path / "ro.db"
    Store(f"sqlite:///{path}")
    readonly = Store(f"sqlite:///file:{path}?mode=ro&uri=true")
    with pytest.raises(StoreError, match="read-only"):
        readonly.create_session(personas=["a"], backend="e", model="m", strategy="system")


def test_bad_database_url_names_the_setting():
    with pytest.raises(StoreError, match="POLARIS_DATABASE_URL"):
        Store("not a url")


def test_database_file_is_plain_sqlite(sqlite_store, tmp_path):
    sqlite_store.create_goal("목표")
    con = sqlite3.connect(tmp_path / "db" / "polaris.db")
    assert con.execute("select title from goal").fetchall() == [("목표",)]


def test_unreachable_postgresql_is_a_clear_error_without_the_password(tmp_path):
    with socket.socket() as sock:  # a port nobody listens on
        sock.bind(("127.0.0.1", 0))
        port = sock.getsockname()[1]
    with pytest.raises(StoreError) as info:
        Store(f"postgresql+psycopg://polaris:hunter2-secret@127.0.0.1:{port}/polaris")
    message = str(info.value)
    assert f"127.0.0.1:{port}" in message and "hunter2-secret" not in message


def test_long_korean_text_round_trips(store):
    chat = store.create_session(personas=["team-lead"], backend="e", model="m", strategy="system")
    text = "북극성을 향해 🚀\n" * 5_000 + "끝"
    store.add_message(chat.id, "user", text)
    assert store.messages(chat.id)[0].content == text


def test_debate_migration_upgrades_an_old_database_and_back(database_url):
    from alembic import command

    from chatbot.store import make_engine

    engine = make_engine(database_url)
    config = alembic_config()
    with engine.begin() as connection:
        config.attributes["connection"] = connection
        command.upgrade(config, "0002")
        connection.exec_driver_sql(
            "INSERT INTO chat_session (title, personas, backend, model, strategy, created_at, "
            "updated_at) VALUES ('옛 대화', '[\"team-lead\"]', 'embedded', 'm', 'system', "
            "CURRENT_TIMESTAMP, CURRENT_TIMESTAMP)")
    engine.dispose()
    store = Store(database_url)  # upgrades to head
    old = store.list_sessions()[0]
    chat = store.get_session(old.id)
    assert (chat.title, chat.turn_order, chat.critic_settings) == ("옛 대화", "all", {})
    store.add_message(chat.id, "user", "안녕하세요")
    store.engine.dispose()
    with make_engine(database_url).begin() as connection:
        config.attributes["connection"] = connection
        command.downgrade(config, "0002")
        assert "judgement" not in inspect(connection).get_table_names()
        assert "turn_order" not in {c["name"] for c in inspect(connection).get_columns(
            "chat_session")}
