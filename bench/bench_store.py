"""Store: message append latency (p50/p99) and opening a 10 000-message session, on SQLite and
on a PostgreSQL server started for the run (tests/pg.py; skipped when its binaries are absent).

Usage: .venv/bin/python bench/bench_store.py [--appends 1000] [--messages 10000] [--opens 15]
"""

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from chatbot.app.chat_view import RECENT
from chatbot.models import utcnow
from chatbot.store import Store
from tests.pg import PostgresServer, binaries_available

REPLY = ("말씀하신 계획은 좋지만, 첫 해 매출과 생활비를 숫자로 먼저 보여 주세요. "
         "고객 세 명이 실제로 돈을 냈는지도 궁금합니다. ") * 3  # ~200 characters, like a reply


def percentile(values: list[float], q: float) -> float:
    return statistics.quantiles(values, n=100, method="inclusive")[q - 1]


def fill(store: Store, session_id: int, n: int) -> None:
    """n messages, written in bulk (setup, not measured)."""
    from chatbot.models import ChatMessage

    with store._session() as session:
        for i in range(n):
            role = "user" if i % 2 == 0 else "assistant"
            session.add(ChatMessage(session_id=session_id, role=role, content=f"{i} {REPLY}",
                                    persona=None if role == "user" else "team-lead",
                                    tokens=None if role == "user" else 64))
        session.commit()


def measure(url: str, appends: int, messages: int, opens: int) -> dict[str, float]:
    store = Store(url)
    chat = store.create_session(personas=["team-lead"], backend="embedded", model="m",
                                strategy="system")
    for _ in range(20):  # warm the pool and caches
        store.add_message(chat.id, "user", REPLY)
    append_ms = []
    for i in range(appends):
        started = time.perf_counter()
        store.add_message(chat.id, "assistant" if i % 2 else "user", REPLY,
                          persona="team-lead" if i % 2 else None)
        append_ms.append((time.perf_counter() - started) * 1000)

    raw_append_ms = _raw_appends(store, chat.id, appends)

    big = store.create_session(personas=["team-lead"], backend="embedded", model="m",
                               strategy="system")
    fill(store, big.id, messages)
    assert len(store.messages(big.id)) == messages
    open_ms, page_ms, raw_ms = [], [], []
    for _ in range(opens):
        open_ms.append(_ms(lambda: store.messages(big.id)))
        page_ms.append(_ms(lambda: _open_page(store, big.id)))
        raw_ms.append(_ms(lambda: _raw_read(store, big.id)))
    store.engine.dispose()
    return {
        "append p50 ms": statistics.median(append_ms),
        "append p99 ms": percentile(append_ms, 99),
        "raw driver append p50 ms": statistics.median(raw_append_ms),
        "open (UI page) ms": statistics.median(page_ms),
        f"read all {messages:,} ms": statistics.median(open_ms),
        f"raw driver {messages:,} ms": statistics.median(raw_ms),
    }


def _ms(action) -> float:
    started = time.perf_counter()
    action()
    return (time.perf_counter() - started) * 1000


def _raw_appends(store: Store, session_id: int, n: int) -> list[float]:
    """Baseline: INSERT + COMMIT of the same row through the bare DB-API driver (the least any
    durable append can cost on this database)."""
    mark = "?" if store.engine.dialect.name == "sqlite" else "%s"
    sql = (f"INSERT INTO message (session_id, role, content, status, created_at) "
           f"VALUES ({mark}, 'user', {mark}, 'complete', {mark})")
    connection = store.engine.raw_connection()
    timings = []
    try:
        cursor = connection.cursor()
        for _ in range(n):
            started = time.perf_counter()
            cursor.execute(sql, (session_id, REPLY, utcnow()))
            connection.commit()
            timings.append((time.perf_counter() - started) * 1000)
    finally:
        connection.close()
    return timings


def _open_page(store: Store, session_id: int) -> None:
    """What the chat page reads to open a session: the session, the count, the latest page."""
    store.get_session(session_id)
    store.count_messages(session_id)
    store.messages(session_id, last=RECENT)


def _raw_read(store: Store, session_id: int) -> list:
    """Baseline: the same rows through the bare DB-API driver, no SQLAlchemy."""
    mark = "?" if store.engine.dialect.name == "sqlite" else "%s"
    connection = store.engine.raw_connection()
    try:
        cursor = connection.cursor()
        cursor.execute(f"SELECT * FROM message WHERE session_id = {mark} ORDER BY id",
                       (session_id,))
        return cursor.fetchall()
    finally:
        connection.close()


def run(appends: int = 1000, messages: int = 10_000, opens: int = 15) -> dict[str, dict]:
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        results["sqlite"] = measure(f"sqlite:///{folder}/bench.db", appends, messages, opens)
    if binaries_available():
        server = PostgresServer().start()
        try:
            url = server.new_database()
            results["postgresql"] = measure(url, appends, messages, opens)
        finally:
            server.stop()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--appends", type=int, default=1000)
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--opens", type=int, default=15)
    args = parser.parse_args()
    results = run(args.appends, args.messages, args.opens)
    keys = list(next(iter(results.values())))
    print(f"{'':12}" + "".join(f"{k:>28}" for k in keys))
    for name, row in results.items():
        print(f"{name:12}" + "".join(f"{row[k]:28.2f}" for k in keys))


if __name__ == "__main__":
    main()
