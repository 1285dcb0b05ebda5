"""UI: time for the browser to show a 500-message session, from navigation until the messages
the page draws are on screen and Streamlit is idle (`polaris run` + Debian's Chromium through
Playwright).

Baselines measured in the same run, interleaved with the real thing so load hits all alike:
- a one-line Streamlit app (`st.write`): the floor any Streamlit page pays on this machine
  (JS bundle, websocket, first script run);
- an empty Polaris session: the same page with no messages.

Usage: .venv/bin/python bench/bench_ui.py [--messages 500] [--runs 5]
"""

import argparse
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import fill

from chatbot.app.chat_view import RECENT
from chatbot.store import Store
from tests.test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, polaris_server, streamlit_server

HELLO = "import streamlit as st\n\nst.write('북극성')\n"


def run(messages: int = 500, runs: int = 5) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        url_db = f"sqlite:///{folder}/data/polaris.db"
        store = Store(url_db)
        sessions = {}
        for size in (0, messages):
            chat = store.create_session(personas=["team-lead"], backend="embedded",
                                        model="gemma-3-270m-q4_k_m.gguf", strategy="system",
                                        title=f"렌더링 벤치마크 {size}")
            fill(store, chat.id, size)
            sessions[size] = chat.id
        hello = Path(folder, "hello.py")
        hello.write_text(HELLO, encoding="utf-8")
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
        env.update(POLARIS_DATABASE_URL=url_db, POLARIS_DATA_DIR=f"{folder}/data",
                   POLARIS_MODELS_DIR=str(ROOT / "models"))
        floor_app = [sys.executable, "-m", "streamlit", "run", str(hello), "--server.headless",
                     "true", "--browser.gatherUsageStats", "false", "--server.port"]
        with polaris_server(Path(folder), env) as polaris, \
                streamlit_server(lambda port: [*floor_app, str(port)], Path(folder), env,
                                 "floor.log") as floor:
            cases = {
                "hello": (floor, 0),
                "empty": (f"{polaris}/?session={sessions[0]}", 0),
                "full": (f"{polaris}/?session={sessions[messages]}", min(messages, RECENT)),
            }
            timings: dict[str, list[float]] = {name: [] for name in cases}
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                for name, (url, drawn) in cases.items():  # warm-up: first open of each
                    _open(browser, url, drawn)
                for _ in range(runs):
                    for name, (url, drawn) in cases.items():
                        timings[name].append(_open(browser, url, drawn))
                browser.close()
    median = {name: statistics.median(values) for name, values in timings.items()}
    return {"render s (median)": median["full"], "render s (max)": max(timings["full"]),
            "empty session s (median)": median["empty"],
            "streamlit floor s (median)": median["hello"],
            "over floor s": median["full"] - median["hello"]}


def _open(browser, url: str, drawn: int) -> float:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(300_000)
    started = time.perf_counter()
    page.goto(url)
    if drawn:
        page.wait_for_function(
            "n => document.querySelectorAll('[data-testid=\"stChatMessage\"]').length >= n",
            arg=drawn)  # the page draws the latest RECENT, the rest on request
    else:
        page.locator('[data-testid="stMarkdown"], [data-testid="stChatMessage"]').first.wait_for()
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    elapsed = time.perf_counter() - started
    page.close()
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--messages", type=int, default=500)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    for key, value in run(args.messages, args.runs).items():
        print(f"{key:20} {value:8.2f}")


if __name__ == "__main__":
    main()
