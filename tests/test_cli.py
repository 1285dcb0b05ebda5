import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.store import Store
from tests.cli import polaris

ASK = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."
JSON_KEYS = {"reply", "persona", "session_id", "backend", "model", "strategy", "tokens", "ttft_s",
             "tok_per_s", "stop_reason"}



@pytest.mark.model
def test_chat_json_from_the_console_script_then_sessions_list(model_path, tmp_path):
    env = {**os.environ, "POLARIS_MAX_TOKENS": "24"}
    polaris_bin = Path(sys.executable).with_name("polaris")
    done = subprocess.run([polaris_bin, "chat", "retired-developer", ASK, "--json"],
                          capture_output=True, text=True, env=env, timeout=300, check=True)
    result = json.loads(done.stdout)
    assert set(result) == JSON_KEYS
    assert result["persona"] == "retired-developer" and result["backend"] == "embedded"
    assert result["model"] == model_path.name
    assert result["strategy"] == "finetuned"  # auto: the shipped adapter is loaded
    assert result["reply"] and 1 <= result["tokens"] <= 24
    assert result["ttft_s"] > 0 and result["stop_reason"] in ("stop", "length")
    listed = subprocess.run([polaris_bin, "sessions", "list", "--json"], capture_output=True,
                            text=True, env=env, timeout=60, check=True)
    sessions = json.loads(listed.stdout)
    assert [(s["id"], s["messages"], s["title"]) for s in sessions] == [
        (result["session_id"], 2, "더이상 회사에 못있겠어. 나만의 회사를 차릴거야.")]


def test_chat_streams_text_and_continues_a_session(capsys, scripted, monkeypatch):
    scripted.replies = ["숫자로 보면요?", "근거는요?"]
    code, out, _ = polaris(capsys, "chat", "team-lead", "창업할래요", "--backend", "scripted",
                           "--goal", "창업")
    assert code == 0 and out == "숫자로 보면요?\n"
    store = Store(os.environ["POLARIS_DATABASE_URL"])
    (session,) = store.list_sessions()
    assert session.goal_title == "창업"
    code, out, _ = polaris(capsys, "chat", "team-lead", "고객이 세 명 있어요", "--session",
                           str(session.id), "--json")
    assert code == 0 and json.loads(out)["reply"] == "근거는요?"
    assert [m.content for m in store.messages(session.id)] == [
        "창업할래요", "숫자로 보면요?", "고객이 세 명 있어요", "근거는요?"]


def test_sessions_show_export_and_delete(capsys, scripted, tmp_path):
    scripted.replies = ["그래서요?"]
    polaris(capsys, "chat", "calm-realist", "유학 갈래요", "--backend", "scripted")
    code, out, _ = polaris(capsys, "sessions", "show", "1")
    assert code == 0 and "> 유학 갈래요" in out and "**차분한 현실주의자**" in out
    out_file = tmp_path / "export" / "s.json"
    code, _, _ = polaris(capsys, "sessions", "export", "1", "--format", "json", "--out",
                           str(out_file))
    exported = json.loads(out_file.read_text(encoding="utf-8"))
    assert code == 0 and [m["content"] for m in exported["messages"]] == ["유학 갈래요", "그래서요?"]
    assert not list(out_file.parent.glob("*.tmp"))
    assert polaris(capsys, "sessions", "delete", "1")[0] == 0
    code, out, _ = polaris(capsys, "sessions", "list")
    assert code == 0 and "no sessions yet" in out


def test_personas_list_show_export_import(capsys, tmp_path):
    code, out, _ = polaris(capsys, "personas", "list", "--json")
    assert code == 0 and {p["id"] for p in json.loads(out)} >= {"team-lead", "late-relative"}
    code, out, _ = polaris(capsys, "personas", "show", "late-relative")
    assert code == 0 and "register: 반말" in out
    code, out, _ = polaris(capsys, "personas", "export", "late-relative")
    card = json.loads(out)
    assert card["spec"] == "chara_card_v2" and card["data"]["name"] == "큰이모"
    card["data"]["extensions"]["polaris"]["id"] = "aunt-two"
    card["data"]["extensions"]["another_app"] = {"x": 1}
    path = tmp_path / "aunt.json"
    path.write_text(json.dumps(card, ensure_ascii=False), encoding="utf-8")
    code, out, _ = polaris(capsys, "personas", "import", str(path))
    assert code == 0 and "aunt-two" in out
    code, out, _ = polaris(capsys, "personas", "export", "aunt-two")
    assert json.loads(out)["data"]["extensions"]["another_app"] == {"x": 1}
    code, _, err = polaris(capsys, "personas", "import", str(path))
    assert code == 2 and "already exists" in err and "--force" in err


@pytest.mark.parametrize(("args", "message"), [
    (["chat", "nobody", "hi", "--backend", "scripted"], "unknown persona 'nobody'"),
    (["chat", "team-lead"], "Missing argument"),
    (["chat", "team-lead", "  ", "--backend", "scripted"], "비어"),
    (["chat", "team-lead", "hi", "--strategy", "magic", "--backend", "scripted"], "strategy"),
    (["chat", "team-lead", "hi", "--backend", "nope"], "unknown backend 'nope'"),
    (["sessions", "show", "abc"], "valid integer"),
    (["sessions", "show", "42"], "session 42 does not exist"),
    (["sessions", "export", "1", "--format", "xml"], "unknown format 'xml'"),
    (["personas", "show", "ghost"], "unknown persona 'ghost'"),
    (["personas", "import", "/no/such/file.json"], "does not exist"),
    (["run", "--port", "99999"], "--port"),
    (["frobnicate"], "No such command"),
])
def test_bad_arguments_exit_2_with_one_line(capsys, scripted, args, message):
    code, _, err = polaris(capsys, *args)
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("polaris: error: ") and message in err
    store = Store(os.environ["POLARIS_DATABASE_URL"])
    assert all(s.messages == 0 for s in store.list_sessions())


def test_bad_setting_names_the_variable(capsys, monkeypatch):
    monkeypatch.setenv("POLARIS_N_CTX", "lots")
    code, _, err = polaris(capsys, "sessions", "list")
    assert code == 2 and "POLARIS_N_CTX" in err


def test_unreachable_backend_exits_1_with_the_fix(capsys, monkeypatch):
    monkeypatch.setenv("POLARIS_OLLAMA_HOST", "http://127.0.0.1:9")
    code, _, err = polaris(capsys, "chat", "team-lead", "hi", "--backend", "ollama",
                           "--model", "gemma3:270m")
    assert code == 1 and "POLARIS_OLLAMA_HOST" in err
    store = Store(os.environ["POLARIS_DATABASE_URL"])
    (message_user, message_reply) = store.messages(store.list_sessions()[0].id)
    assert message_user.content == "hi" and message_reply.status == "error"


@pytest.mark.model
def test_doctor_reports_the_embedded_model_healthy(capsys, model_path):
    code, out, _ = polaris(capsys, "doctor")
    assert code == 0
    assert "[ok  ] backend embedded" in out and "[ok  ] chat template: gemma3" in out
    assert "[warn] backend ollama" in out  # not the configured backend: a warning only


def test_doctor_fails_when_the_configured_model_is_missing(capsys, tmp_path, monkeypatch):
    monkeypatch.setenv("POLARIS_MODEL", str(tmp_path / "missing.gguf"))
    code, out, _ = polaris(capsys, "doctor")
    assert code == 1 and "[FAIL] backend embedded" in out and "make models" in out


def test_data_validate_and_stats(capsys, tmp_path):
    good = tmp_path / "chat.jsonl"
    good.write_text(json.dumps({"messages": [{"role": "user", "content": "안녕"},
                                             {"role": "assistant", "content": "왜 왔어?"}]},
                               ensure_ascii=False) + "\n", encoding="utf-8")
    code, out, err = polaris(capsys, "data", "validate", str(good))
    assert code == 0 and "1 chat records, ok" in out and "at least 200" in err
    code, out, _ = polaris(capsys, "data", "stats", str(good), "--json")
    stats = json.loads(out)
    assert code == 0 and stats["records"] == 1 and stats["reply_register"] == {"반말": 1}
    bad = tmp_path / "bad.jsonl"
    bad.write_text('{"messages": [{"role": "user", "content": "x"}]}\n', encoding="utf-8")
    code, _, err = polaris(capsys, "data", "validate", str(bad))
    assert code == 2 and err.startswith(f"polaris: error: {bad}:1: ")
