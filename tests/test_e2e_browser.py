"""The UI end to end in a real browser: Debian's Chromium driven by Playwright, against
`polaris run` on a free port with the embedded Gemma model (and, where a test needs replies it
can predict, the local Ollama stand-in).

One server and one browser for the whole module. Each step saves a screenshot under
tests/artifacts/ (ignored by git); to refresh the README's, copy
tests/artifacts/screenshot-chat.png over docs/screenshot-chat.png.
"""

import json
import os
import re
import shutil
import socket
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

import httpx
import pytest
from werkzeug import Request, Response

from chatbot.store import Store
from tests.ollama_wire import chat_line

playwright_api = pytest.importorskip("playwright.sync_api", reason="pip install playwright")

pytestmark = [pytest.mark.browser, pytest.mark.model]

ROOT = Path(__file__).resolve().parents[1]
ARTIFACTS = ROOT / "tests" / "artifacts"
CHROMIUM = Path(os.environ.get("POLARIS_CHROMIUM", "/usr/bin/chromium"))
CHROMIUM_ARGS = ["--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
                 "--disable-component-update", "--disable-sync"]
POLARIS = Path(sys.executable).parent / "polaris"
OLLAMA_MODEL = "gemma3-critic:latest"
MAX_TOKENS = 32
TIMEOUT_MS = 90_000  # generous: the suite shares two cores with whatever else runs


# -- fixtures ------------------------------------------------------------------------------------

def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class Server:
    def __init__(self, url: str, database_url: str, env: dict[str, str]):
        self.url, self.database_url, self.env = url, database_url, env
        self._store: Store | None = None

    def store(self) -> Store:
        """The server's database, opened from the test process."""
        if self._store is None:
            self._store = Store(self.database_url)
        return self._store

    def ollama_session(self, title: str) -> int:
        """A session on the Ollama stand-in, made the way the CLI would."""
        return self.store().create_session(personas=["team-lead"], backend="ollama",
                                           model=OLLAMA_MODEL, strategy="system", title=title).id


@pytest.fixture(scope="module")
def server(tmp_path_factory, make_httpserver, model_path):
    folder = tmp_path_factory.mktemp("e2e")
    database_url = f"sqlite:///{folder / 'data' / 'polaris.db'}"
    env = {k: v for k, v in os.environ.items() if not k.startswith("POLARIS_")}
    env.update(POLARIS_DATABASE_URL=database_url, POLARIS_DATA_DIR=str(folder / "data"),
               POLARIS_MODELS_DIR=str(model_path.parent), POLARIS_MAX_TOKENS=str(MAX_TOKENS),
               POLARIS_N_CTX="2048", POLARIS_STRATEGY="system",
               # The persuasion judge (tested elsewhere) would run before every reply on the
               # same embedded model; here it points at a closed port and fails at once.
               POLARIS_JUDGE_BACKEND="openai", POLARIS_JUDGE_MODEL="judge",
               POLARIS_OPENAI_BASE_URL=f"http://127.0.0.1:{_free_port()}/v1",
               POLARIS_OLLAMA_HOST=make_httpserver.url_for("/").rstrip("/"))
    with polaris_server(folder, env) as url:
        yield Server(url, database_url, env)


def polaris_server(folder: Path, env: dict[str, str]):
    """`polaris run` on a free port in `folder` with `env`, until it is healthy; its URL."""
    return streamlit_server(lambda port: [str(POLARIS), "run", "--port", str(port)], folder,
                            env, "server.log")


@contextmanager
def streamlit_server(command: Callable[[int], list[str]], folder: Path, env: dict[str, str],
                     log_name: str) -> Iterator[str]:
    """A Streamlit server started by `command(port)` on a free port, until `/_stcore/health`
    answers; its URL. Output goes to folder/log_name."""
    port = _free_port()
    log = (folder / log_name).open("w")
    process = subprocess.Popen(command(port), env=env, cwd=folder, stdout=log,
                               stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 60
    try:
        while True:
            try:
                if httpx.get(f"{url}/_stcore/health", timeout=1).status_code == 200:
                    break
            except httpx.HTTPError:
                pass
            if process.poll() is not None or time.monotonic() > deadline:
                # an Exception, not pytest.fail: bench/bench_ui.py starts servers with this too
                raise RuntimeError(f"`{' '.join(command(port))}` did not come up: "
                                   f"{(folder / log_name).read_text()}")
            time.sleep(0.2)
        yield url
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
        log.close()


@pytest.fixture(scope="module")
def browser():
    if not CHROMIUM.exists():
        pytest.fail(f"{CHROMIUM} is missing: `make setup` installs Debian's chromium "
                    f"(apt-get install -y chromium)")
    with playwright_api.sync_playwright() as p:
        browser = p.chromium.launch(executable_path=str(CHROMIUM), args=CHROMIUM_ARGS)
        yield browser
        browser.close()


@pytest.fixture
def new_page(browser):
    contexts = []

    def make():
        context = browser.new_context(viewport={"width": 1280, "height": 900}, locale="ko-KR")
        context.set_default_timeout(TIMEOUT_MS)
        contexts.append(context)
        page = context.new_page()
        page.errors = []  # uncaught page errors, e.g. from injected script
        page.on("pageerror", lambda exc: page.errors.append(str(exc)))
        return page

    yield make
    for context in contexts:
        context.close()


@pytest.fixture
def page(new_page):
    return new_page()


# -- helpers -------------------------------------------------------------------------------------

def shot(page, name: str) -> Path:
    ARTIFACTS.mkdir(parents=True, exist_ok=True)
    path = ARTIFACTS / f"e2e-{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def idle(page) -> None:
    """Wait until Streamlit has finished running the script for the last interaction."""
    page.wait_for_timeout(300)
    page.locator('[data-testid="stStatusWidget"]').wait_for(state="hidden")
    page.wait_for_load_state("networkidle")


def open_app(page, server: Server, session_id: int | None = None) -> None:
    page.goto(server.url + (f"/?session={session_id}" if session_id else "/"))
    page.get_by_text("Polaris 북극성").first.wait_for()
    idle(page)


def chat_messages(page):
    return page.locator('[data-testid="stChatMessage"]')


def send(page, text: str) -> None:
    box = page.get_by_test_id("stChatInputTextArea")
    box.fill(text)
    box.press("Enter")


def record_stream(page) -> None:
    """Record the length of the newest chat message's text at every DOM change."""
    page.evaluate("""() => {
        window.__lengths = [];
        new MutationObserver(() => {
            const all = document.querySelectorAll('[data-testid="stChatMessage"]');
            if (all.length) window.__lengths.push(all[all.length - 1].innerText.length);
        }).observe(document.body, {subtree: true, childList: true, characterData: true});
    }""")


def wait_for_replies(page) -> None:
    """Replies are done when the page has rerun and offers to regenerate."""
    page.get_by_role("button", name="↻ 다시 생성").wait_for()
    idle(page)


def selected_sessions(page) -> list[str]:
    """The labels of the checked entries in the sidebar's session list."""
    return page.evaluate("""() => [...document.querySelectorAll(
        '[data-testid="stSidebar"] [role="radiogroup"] label')]
        .filter(label => label.querySelector('input').checked).map(label => label.innerText)""")


def download(page, label: str) -> Path:
    """Click a download button and keep the file under tests/artifacts/."""
    with page.expect_download() as info:
        page.get_by_role("button", name=label).click()
    saved = info.value
    assert saved.failure() is None, saved.failure()
    path = ARTIFACTS / "downloads" / saved.suggested_filename
    saved.save_as(path)
    return path


def words(text: str) -> str:
    """Only letters and digits: model output passes through Markdown on screen."""
    return re.sub(r"[\W_]+", "", text)


# -- the journey ---------------------------------------------------------------------------------

GOAL = "회사를 그만두고 1인 개발 스튜디오 차리기"
ASK = "다음 달에 퇴사하고 창업할 거예요. 첫 고객 세 명이 이미 있어요."


def test_create_chat_reload_rename_export_delete(server, page):
    open_app(page, server)
    page.get_by_text("새 토론 시작").wait_for()
    shot(page, "01-start")

    # a goal and two critics
    page.get_by_label("북극성 · 이루고 싶은 목표").fill(GOAL)
    page.get_by_label("근거 (숫자, 경험, 이미 한 일)").fill("월 300만 원 계약 두 건")
    page.get_by_test_id("stMultiSelect").click()
    page.get_by_role("option", name=re.compile("차분한 현실주의자")).click()
    page.keyboard.press("Escape")
    shot(page, "02-goal-and-critics")
    page.get_by_role("button", name="토론 시작").click()
    page.get_by_test_id("stChatInputTextArea").wait_for()
    idle(page)
    [chat] = server.store().list_sessions()
    assert chat.personas == ["team-lead", "calm-realist"] and chat.goal_title == GOAL
    assert f"session={chat.id}" in page.url

    # a Korean message; the replies stream in
    record_stream(page)
    send(page, ASK)
    page.get_by_role("button", name="⏹ 중지").wait_for()
    wait_for_replies(page)
    shot(page, "03-replies")
    lengths = page.evaluate("window.__lengths")
    assert len(set(lengths)) >= 3, f"the reply did not arrive in pieces: {lengths}"
    user, *replies = server.store().messages(chat.id)
    assert (user.role, user.content) == ("user", ASK)
    assert [r.persona for r in replies] == ["team-lead", "calm-realist"]
    assert all(r.status == "complete" and r.content.strip() and r.tokens for r in replies)
    shown = chat_messages(page)
    assert ASK in shown.nth(0).inner_text()
    for i, reply in enumerate(replies, start=1):
        assert words(reply.content)[:20] in words(shown.nth(i).inner_text())
    assert server.store().get_session(chat.id).title == ASK[:29] + "…"

    # reload: the same session comes back from the URL
    page.reload()
    page.get_by_test_id("stChatInputTextArea").wait_for()
    idle(page)
    assert chat_messages(page).count() == 3
    assert ASK in chat_messages(page).nth(0).inner_text()
    assert page.get_by_role("heading", name=ASK[:29] + "…").is_visible()
    shutil.copy(shot(page, "04-resumed"), ARTIFACTS / "screenshot-chat.png")

    # rename: the renamed session stays the one selected in the sidebar list
    page.get_by_text("대화 관리").click()
    page.get_by_label("대화 이름").fill("퇴사 리허설 1회차")
    page.get_by_role("button", name="이름 바꾸기").click()
    page.get_by_role("heading", name="퇴사 리허설 1회차").wait_for()
    idle(page)
    shot(page, "05-renamed")
    assert server.store().get_session(chat.id).title == "퇴사 리허설 1회차"
    assert selected_sessions(page) == ["퇴사 리허설 1회차 · 3"]

    # export through the sidebar's download buttons: the files hold what the UI stored
    day = f"{server.store().get_session(chat.id).created_at:%Y-%m-%d}"
    markdown = download(page, "Markdown으로 내보내기")
    shot(page, "05b-exported")
    assert markdown.name == f"polaris-session-{chat.id}-{day}.md"
    text = markdown.read_text(encoding="utf-8")
    assert text.startswith("# 퇴사 리허설 1회차\n") and f"**{GOAL}**" in text
    assert f"> {ASK}" in text
    for line in (line for reply in replies for line in reply.content.splitlines()):
        assert (f"> {line}" if line else ">") in text  # every line of every reply, quoted
    as_json = download(page, "JSON으로 내보내기")
    assert as_json.name == f"polaris-session-{chat.id}-{day}.json"
    data = json.loads(as_json.read_text(encoding="utf-8"))
    assert data["title"] == "퇴사 리허설 1회차" and data["goal"]["title"] == GOAL
    assert [m["content"] for m in data["messages"]] == [ASK, *(r.content for r in replies)]
    assert selected_sessions(page) == ["퇴사 리허설 1회차 · 3"]  # still, after the downloads

    # delete, after confirming
    if not page.get_by_text("삭제를 확인합니다").is_visible():
        page.get_by_text("대화 관리").click()
    delete = page.get_by_role("button", name="대화 삭제")
    assert delete.is_disabled()
    page.get_by_text("삭제를 확인합니다").click()
    delete.click()
    page.get_by_text("새 토론 시작").wait_for()
    idle(page)
    shot(page, "06-deleted")
    assert server.store().list_sessions() == []
    assert "session=" not in page.url


# -- streaming faults and untrusted output -------------------------------------------------------

def _ollama_line(text: str, done: bool = False) -> bytes:
    return chat_line(OLLAMA_MODEL, text, done=done, eval_count=20, eval_duration=400_000_000,
                     prompt_eval_count=30, total_duration=900_000_000)


def ollama_reply(httpserver, pieces: list[str], *, every_s: float = 0.0,
                 expect_user: str) -> list[dict]:
    """Answer the next /api/chat with these pieces; the request must carry the user's words."""
    requests: list[dict] = []

    def handler(request: Request) -> Response:
        body = json.loads(request.get_data())
        requests.append(body)
        assert body["model"] == OLLAMA_MODEL and body["stream"] is True
        assert body["messages"][-1] == {"role": "user", "content": expect_user}

        def lines():
            for piece in pieces:
                time.sleep(every_s)
                yield _ollama_line(piece)
            yield _ollama_line("", done=True)

        return Response(lines(), content_type="application/x-ndjson")

    httpserver.expect_oneshot_request("/api/chat", method="POST").respond_with_handler(handler)
    return requests


def test_reload_during_streaming_loses_nothing(server, page, httpserver):
    session_id = server.ollama_session("새로고침 시험")
    pieces = [f"{i}번째 조각. " for i in range(1, 41)]
    requests = ollama_reply(httpserver, pieces, every_s=0.2, expect_user="끝까지 들어 주세요")
    open_app(page, server, session_id)
    send(page, "끝까지 들어 주세요")
    page.get_by_text("3번째 조각.").wait_for()
    page.reload()  # mid-reply: about 7 s of the reply are still to come
    page.get_by_test_id("stChatInputTextArea").wait_for()
    idle(page)
    shot(page, "07-reloaded-mid-stream")
    assert "끝까지 들어 주세요" in chat_messages(page).nth(0).inner_text()
    assert "1번째 조각." in chat_messages(page).nth(1).inner_text()

    store = server.store()
    user, reply = store.messages(session_id)
    assert user.content == "끝까지 들어 주세요" and reply.content.startswith("1번째 조각.")
    deadline = time.monotonic() + 60
    while reply.status == "interrupted" and not reply.stop_reason and time.monotonic() < deadline:
        time.sleep(0.2)  # the old page's run goes on, or is stopped, on the server
        reply = store.messages(session_id)[1]
    # whatever the server did with the closed page's run, every generated piece it read is kept
    assert "".join(pieces).startswith(reply.content)
    assert reply.status == "complete" or reply.stop_reason == "cancelled"
    if reply.status == "complete":
        assert reply.content == "".join(pieces)
    page.reload()
    page.get_by_test_id("stChatInputTextArea").wait_for()
    idle(page)
    assert words(reply.content) in words(chat_messages(page).nth(1).inner_text())
    assert len(requests) == 1
    httpserver.check_assertions()


XSS = ('보세요 <script>window.__polaris_xss = "script"</script> 그리고 '
       '<img src="x" onerror="window.__polaris_xss = \'img\'"> 끝. '
       '<a href="javascript:window.__polaris_xss=1">링크</a>')


def test_model_output_is_text_never_html(server, page, httpserver):
    session_id = server.ollama_session("HTML 시험")
    ollama_reply(httpserver, [XSS[:30], XSS[30:70], XSS[70:]], expect_user="아무 말이나 해 보세요")
    open_app(page, server, session_id)
    send(page, "아무 말이나 해 보세요")
    wait_for_replies(page)
    for when in ("streamed", "reloaded"):  # drawn while streaming, then from the DB
        shot(page, f"08-html-{when}")
        reply = chat_messages(page).nth(1)
        assert "보세요" in reply.inner_text() and "끝." in reply.inner_text()
        assert "<script>window.__polaris_xss" in reply.inner_text()  # shown, as text
        assert "<img src=" in reply.inner_text()
        assert page.evaluate("window.__polaris_xss") is None
        assert reply.locator("img, script, iframe, a[href^='javascript']").count() == 0
        assert page.locator("script:has-text('__polaris_xss')").count() == 0
        assert page.errors == []
        page.reload()
        page.get_by_test_id("stChatInputTextArea").wait_for()
        idle(page)
    assert server.store().messages(session_id)[1].content == XSS
    httpserver.check_assertions()


def test_oversized_message_is_refused_in_the_ui(server, page):
    session_id = server.ollama_session("긴 메시지 시험")
    open_app(page, server, session_id)
    send(page, "가" * 100_000)
    page.get_by_text("메시지가 너무 깁니다").wait_for()
    shot(page, "09-too-long")
    assert server.store().messages(session_id) == []


def test_two_browser_sessions_chat_at_once_without_mixing(server, new_page):
    asks = ["서른다섯에 개발자로 전향하려고요.", "가족에게 유학 계획을 말할 거예요."]
    pages, ids = [], []
    for i, ask in enumerate(asks):
        session_id = server.store().create_session(
            personas=["team-lead"], backend="embedded", model="gemma-3-270m-q4_k_m.gguf",
            strategy="system", title=f"동시 {i}").id
        page = new_page()
        open_app(page, server, session_id)
        pages.append(page)
        ids.append(session_id)
    for page, ask in zip(pages, asks, strict=True):
        send(page, ask)
    for page in pages:
        wait_for_replies(page)
    shot(pages[0], "10-concurrent-a")
    shot(pages[1], "10-concurrent-b")
    store = server.store()
    for page, session_id, ask in zip(pages, ids, asks, strict=True):
        user, reply = store.messages(session_id)
        assert user.content == ask
        assert reply.status == "complete" and reply.content.strip() and reply.tokens
        assert reply.tokens <= MAX_TOKENS
        assert ask in chat_messages(page).nth(0).inner_text()
        assert words(reply.content)[:20] in words(chat_messages(page).nth(1).inner_text())
