"""Export: time and peak Python memory to write a 10 000-message session as Markdown and JSON.

Usage: .venv/bin/python bench/bench_export.py [--messages 10000] [--runs 3]
"""

import argparse
import statistics
import sys
import tempfile
import time
import tracemalloc
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

from bench_store import fill

from chatbot.export import session_json, session_markdown
from chatbot.store import Store
from serving.persona import load_personas


def run(messages: int = 10_000, runs: int = 3) -> dict[str, dict[str, float]]:
    personas = load_personas()
    formats = {"md": lambda s, i: session_markdown(s, i, personas), "json": session_json}
    results = {}
    with tempfile.TemporaryDirectory() as folder:
        store = Store(f"sqlite:///{folder}/bench.db")
        chat = store.create_session(personas=["team-lead"], backend="embedded", model="m",
                                    strategy="system", title="벤치마크")
        fill(store, chat.id, messages)
        for name, export in formats.items():
            export(store, chat.id)  # warm
            seconds = []
            for _ in range(runs):
                started = time.perf_counter()
                text = export(store, chat.id)
                seconds.append(time.perf_counter() - started)
            tracemalloc.start()
            export(store, chat.id)
            _, peak = tracemalloc.get_traced_memory()
            tracemalloc.stop()
            results[name] = {"export s (median)": statistics.median(seconds),
                             "peak MiB": peak / 2**20, "output MiB": len(text.encode()) / 2**20}
        store.engine.dispose()
    return results


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    results = run(args.messages, args.runs)
    keys = list(next(iter(results.values())))
    print(f"{args.messages:,} messages")
    print(f"{'':6}" + "".join(f"{k:>20}" for k in keys))
    for name, row in results.items():
        print(f"{name:6}" + "".join(f"{row[k]:20.3f}" for k in keys))


if __name__ == "__main__":
    main()
