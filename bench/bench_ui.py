"""UI: time for the browser to show a 500-message session, from navigation until every message
is on screen and Streamlit is idle (`polaris run` + Debian's Chromium through Playwright).

Usage: .venv/bin/python bench/bench_ui.py [--messages 500] [--runs 5]
"""

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import httpx

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "bench"))

from bench_store import fill

from chatbot.app.chat_view import RECENT
from chatbot.store import Store
from tests.test_e2e_browser import CHROMIUM, CHROMIUM_ARGS, POLARIS, _free_port


def run(messages: int = 500, runs: int = 5) -> dict[str, float]:
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory() as folder:
        url_db = f"sqlite:///{folder}/data/polaris.db"
        store = Store(url_db)
        chat = store.create_session(personas=["team-lead"], backend="embedded",
                                    model="gemma-3-270m-q4_k_m.gguf", strategy="system",
                                    title="렌더링 벤치마크")
        fill(store, chat.id, messages)
        env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
        env.update(POLARIS_DATABASE_URL=url_db, POLARIS_DATA_DIR=f"{folder}/data",
                   POLARIS_MODELS_DIR=str(ROOT / "models"))
        port = _free_port()
        server = subprocess.Popen([str(POLARIS), "run", "--port", str(port)], env=env,
                                  cwd=folder, stdout=subprocess.DEVNULL,
                                  stderr=subprocess.DEVNULL)
        base = f"http://127.0.0.1:{port}"
        try:
            for _ in range(600):
                try:
                    if httpx.get(f"{base}/_stcore/health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    time.sleep(0.1)
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
                timings = [_open(browser, f"{base}/?session={chat.id}", messages)
                           for _ in range(runs + 1)]
                browser.close()
        finally:
            server.terminate()
            server.wait(timeout=30)
    return {"first open s": timings[0], "render s (median)": statistics.median(timings[1:]),
            "render s (max)": max(timings[1:])}


def _open(browser, url: str, messages: int) -> float:
    page = browser.new_page(viewport={"width": 1280, "height": 900})
    page.set_default_timeout(300_000)
    started = time.perf_counter()
    page.goto(url)
    page.wait_for_function(
        "n => document.querySelectorAll('[data-testid=\"stChatMessage\"]').length >= n",
        arg=min(messages, RECENT))  # the page draws the latest RECENT, the rest on request
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
