"""Bad input at every user-facing entry point: a clear error, and nothing half-written.

Entry points: chat text (engine, store, CLI), persona card files, Character Card imports,
dataset files, CLI arguments, settings values. (Model output shown as text, never as HTML, is
checked in a real browser: tests/test_e2e_browser.py.)
"""

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest

from chatbot.charcard import card_json, to_card
from chatbot.engine import MAX_USER_CHARS, ChatEngine
from chatbot.store import Store
from serving.persona import load_personas
from serving.settings import Settings
from tests.cli import polaris


def one_line_error(err: str) -> str:
    assert err.count("\n") == 1 and err.startswith("polaris: error: "), err
    return err


def db_store() -> Store:
    return Store(os.environ["POLARIS_DATABASE_URL"])


def files_under(folder: Path) -> set[Path]:
    return {p for p in folder.rglob("*") if p.is_file()} if folder.exists() else set()


@pytest.fixture
def engine(scripted) -> ChatEngine:
    return ChatEngine(Settings())


@pytest.fixture
def chat(engine):
    return engine.start_session(["team-lead"], backend="scripted")


# -- chat text -----------------------------------------------------------------------------------

@pytest.mark.parametrize("text", ["가" * 100_000, "a" * 100_000, "가" * (MAX_USER_CHARS + 1)])
def test_oversized_message_is_refused_and_nothing_is_stored(engine, chat, scripted, text):
    with pytest.raises(ValueError, match="너무 깁니다") as info:
        engine.send(chat.id, text)
    assert f"{len(text):,}자" in str(info.value) and f"{MAX_USER_CHARS:,}자 이하" in str(info.value)
    assert engine.store.messages(chat.id) == []
    assert engine.store.get_session(chat.id).title == "새 대화"  # not renamed either
    assert scripted.requests == []


def test_message_at_the_limit_is_stored_whole(engine, chat):
    text = "북" * MAX_USER_CHARS
    engine.send(chat.id, text)
    assert engine.store.messages(chat.id)[0].content == text


@pytest.mark.parametrize(("text", "stored"), [
    ("안녕\x00하세요", "안녕하세요"),
    ("\x1b[31m빨간 글씨\x1b[0m", "[31m빨간 글씨[0m"),
    ("줄\r\n바꿈\x07\x08", "줄\n바꿈"),
    ("탭\t그대로\n줄바꿈도", "탭\t그대로\n줄바꿈도"),
    ("이모지 🚀 와 \u202e오른쪽에서 왼쪽\u202c 과 zero\u200bwidth",
     "이모지 🚀 와 \u202e오른쪽에서 왼쪽\u202c 과 zero\u200bwidth"),
])
def test_control_characters_are_removed_and_the_rest_kept(engine, chat, text, stored):
    engine.send(chat.id, text)
    assert engine.store.messages(chat.id)[0].content == stored


@pytest.mark.parametrize("text", ["\x00\x01\x02", "\x1b\x07  \x7f", ""])
def test_message_of_only_control_characters_is_refused(engine, chat, text):
    with pytest.raises(ValueError, match="비어 있습니다"):
        engine.send(chat.id, text)
    assert engine.store.messages(chat.id) == []


def test_text_that_is_not_unicode_is_refused_clearly(engine, chat):
    """Undecodable bytes in argv reach Python as unpaired surrogates."""
    with pytest.raises(ValueError, match="유니코드가 아닌 문자") as info:
        engine.send(chat.id, "안녕 \udcff\udcfe")
    assert "4번째 글자" in str(info.value)
    assert engine.store.messages(chat.id) == []


def test_cli_message_too_long_exits_2_and_stores_no_message(capsys, scripted):
    code, _, err = polaris(capsys, "chat", "team-lead", "a" * 100_000, "--backend", "scripted")
    assert code == 2 and "너무 깁니다" in one_line_error(err)
    assert all(s.messages == 0 for s in db_store().list_sessions())
    assert scripted.requests == []


@pytest.mark.parametrize("text", ["a" * 100_000, "\x00\x07", "안녕 \udcff"])
def test_cli_refused_message_leaves_no_empty_session(capsys, scripted, text):
    code, _, _ = polaris(capsys, "chat", "team-lead", text, "--backend", "scripted")
    assert code == 2
    assert db_store().list_sessions() == []


# -- persona cards and Character Card imports ----------------------------------------------------

def _our_card(**polaris_fields) -> dict:
    card = json.loads(card_json(to_card(load_personas()["team-lead"])))
    card["data"]["extensions"]["polaris"].update({"id": "imported-critic", **polaris_fields})
    return card


def _without_examples() -> dict:
    card = _our_card()
    del card["data"]["extensions"]["polaris"]["examples"]
    card["data"]["mes_example"] = ""
    return card


BAD_CARDS = [
    ("card.json", '{"spec": "chara_card_v2"', "not valid JSON"),
    ("card.json", "", "not valid JSON"),
    ("card.json", "[1, 2]", "must be a JSON object"),
    ("card.json", b"\xff\xfe\x00garbage", "cannot read card"),
    ("card.json", json.dumps({"spec": "chara_card_v3", "data": {}}), "not a Character Card V2"),
    ("card.json", json.dumps({"spec": "chara_card_v2", "data": "x"}), "not a Character Card V2"),
    ("card.json", json.dumps(_our_card(id="../../etc/evil")), "field 'id'"),
    ("card.json", json.dumps(_our_card(register="사투리")), "field 'register'"),
    ("card.json", json.dumps(_our_card(tone="angry")), "field 'tone'"),
    ("card.json", json.dumps(_without_examples()), "field 'examples'"),
    ("card.yaml", "id: x\nname: [unclosed\n", "not valid YAML"),
    ("card.yaml", "- a\n- b\n", "must be a YAML mapping"),
    ("card.yaml", "", "must be a YAML mapping"),
    ("card.yaml", "id: card\nname: 이름\n", "field"),
]


@pytest.mark.parametrize(("name", "content", "message"), BAD_CARDS)
def test_bad_card_import_exits_2_and_writes_no_card(capsys, tmp_path, name, content, message):
    path = tmp_path / "incoming" / name
    path.parent.mkdir()
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    before = files_under(tmp_path / "data")

    code, _, err = polaris(capsys, "personas", "import", path)

    assert code == 2 and message in one_line_error(err) and name in err
    assert files_under(tmp_path / "data") == before
    code, out, _ = polaris(capsys, "personas", "list", "--json")
    assert code == 0 and len(json.loads(out)) == 5


def test_importing_over_an_existing_card_without_force_changes_nothing(capsys, tmp_path):
    card = tmp_path / "card.json"
    card.write_text(card_json(_our_card()), encoding="utf-8")
    assert polaris(capsys, "personas", "import", card)[0] == 0
    saved = tmp_path / "data" / "personas" / "imported-critic.yaml"
    first = saved.read_bytes()
    changed = _our_card()
    changed["data"]["name"] = "바뀐 이름"
    card.write_text(json.dumps(changed, ensure_ascii=False), encoding="utf-8")

    code, _, err = polaris(capsys, "personas", "import", card)

    assert code == 2 and "--force" in one_line_error(err)
    assert saved.read_bytes() == first


def test_a_broken_card_in_the_personas_folder_is_named_with_its_line(capsys, tmp_path):
    folder = tmp_path / "data" / "personas"
    folder.mkdir(parents=True)
    (folder / "broken.yaml").write_text("id: broken\nname: [unclosed\n", encoding="utf-8")
    code, _, err = polaris(capsys, "chat", "team-lead", "안녕하세요", "--backend", "scripted")
    assert code == 2 and "broken.yaml:" in one_line_error(err) and "fix the syntax" in err
    assert db_store().list_sessions() == []


# -- dataset files -------------------------------------------------------------------------------

GOOD_CHAT = '{"messages": [{"role": "user", "content": "a"}, {"role": "assistant", "content": "b"}]}'
BAD_DATA = [
    ("bad.jsonl", GOOD_CHAT + '\n{"messages": [{"role": "user"}]}\n',
     "bad.jsonl:2: field 'messages[0].content'"),
    ("bad.jsonl", GOOD_CHAT + "\n{not json\n", "bad.jsonl:2"),
    ("bad.jsonl", b"\xff\xfe\x00\x01", "not UTF-8"),
    ("bad.jsonl", "", "no records"),
    ("bad.csv", "C_ID,role\n1,user\n", "bad.csv:1: CSV header lacks content"),
    ("bad.json", '[{"instruction": "x"}]', "bad.json"),
]
DATA_COMMANDS = [
    ["data", "validate", "{IN}"],
    ["data", "stats", "{IN}"],
    ["data", "split", "{IN}"],
    ["data", "dedup", "{IN}", "{DIR}/out.jsonl"],
    ["data", "convert", "{IN}", "{DIR}/out.jsonl", "--to", "alpaca"],
]


@pytest.mark.parametrize("command", DATA_COMMANDS, ids=lambda c: c[1])
@pytest.mark.parametrize(("name", "content", "message"), BAD_DATA)
def test_bad_dataset_file_exits_2_and_writes_nothing(capsys, tmp_path, command, name, content,
                                                     message):
    folder = tmp_path / "datasets"
    folder.mkdir()
    path = folder / name
    path.write_bytes(content if isinstance(content, bytes) else content.encode())
    args = [a.replace("{IN}", str(path)).replace("{DIR}", str(folder)) for a in command]

    code, _, err = polaris(capsys, *args)

    assert code == 2 and message in one_line_error(err)
    assert files_under(folder) == {path}


@pytest.mark.parametrize(("args", "message"), [
    (["data", "convert", "{GOOD}", "{DIR}/x.jsonl", "--to", "weird"], "unknown format 'weird'"),
    (["data", "split", "{GOOD}", "--heldout-percent", "150"], "--heldout-percent"),
    (["data", "dedup", "{GOOD}", "{DIR}/o.jsonl", "--threshold", "2"], "threshold"),
    (["data", "validate", "{DIR}/missing.jsonl"], "no such file"),
])
def test_bad_dataset_options_exit_2_and_write_nothing(capsys, tmp_path, args, message):
    folder = tmp_path / "datasets"
    folder.mkdir()
    good = folder / "good.jsonl"
    good.write_text(GOOD_CHAT + "\n", encoding="utf-8")
    args = [a.replace("{GOOD}", str(good)).replace("{DIR}", str(folder)) for a in args]
    code, _, err = polaris(capsys, *args)
    assert code == 2 and message in one_line_error(err)
    assert files_under(folder) == {good}


# -- CLI arguments -------------------------------------------------------------------------------

@pytest.mark.parametrize(("args", "message"), [
    (["chat", "team-lead", "안녕", "--session", "-3", "--backend", "scripted"],
     "session -3 does not exist"),
    (["chat", "team-lead", "안녕", "--session", "abc"], "valid integer"),
    (["chat", "team-lead", "안녕", "--strategy", "Plain", "--backend", "scripted"], "strategy"),
    (["sessions", "delete", "99"], "session 99 does not exist"),
    (["sessions", "export", "99"], "session 99 does not exist"),
    (["run", "--port", "0"], "--port"),
    (["run", "--port", "http"], "--port"),
    (["personas", "export", "../team-lead"], "unknown persona"),
])
def test_bad_cli_arguments_exit_2_and_write_nothing(capsys, scripted, args, message):
    store = db_store()
    chat = store.create_session(personas=["team-lead"], backend="scripted", model="m",
                                strategy="system", title="그대로")
    code, _, err = polaris(capsys, *args)
    assert code == 2 and message in one_line_error(err)
    [summary] = store.list_sessions()
    assert (summary.id, summary.title, summary.messages) == (chat.id, "그대로", 0)
    assert scripted.requests == []


STRATEGIES = "use one of plain, system, fewshot, finetuned"
PERSONA_IDS = "use one of team-lead, retired-developer, pessimistic-jobseeker, late-relative"


@pytest.mark.parametrize(("args", "message"), [
    (["chat", "team-lead", "안녕", "--strategy", ""], f"'--strategy': cannot be empty: {STRATEGIES}"),
    (["chat", "team-lead", "안녕", "--strategy", "  \t"], f"'--strategy': cannot be empty: {STRATEGIES}"),
    (["chat", "team-lead", "안녕", "--session", "{ID}", "--strategy", ""],
     f"'--strategy': cannot be empty: {STRATEGIES}"),
    (["chat", "team-lead", "안녕", "--backend", ""],
     "'--backend': cannot be empty: use one of embedded, ollama, openai"),
    (["chat", "team-lead", "안녕", "--session", "{ID}", "--backend", " "],
     "'--backend': cannot be empty: use one of embedded, ollama, openai"),
    (["chat", "team-lead", "안녕", "--backend", "scripted", "--model", ""],
     "'--model': cannot be empty: name a GGUF file or the backend's model"),
    (["chat", "", "안녕", "--backend", "scripted"], f"'PERSONA': cannot be empty: {PERSONA_IDS}"),
    (["chat", " ", "안녕", "--session", "{ID}"], f"'PERSONA': cannot be empty: {PERSONA_IDS}"),
    (["compare", "--persona", "", "--message", "안녕"], f"'--persona': cannot be empty: {PERSONA_IDS}"),
    (["compare", "--persona", "team-lead", "--message", "안녕", "--models", ""],
     "'--models': cannot be empty: give models separated by commas"),
    (["compare", "--persona", "team-lead", "--message", "안녕", "--models", "m", "--backend", ""],
     "'--backend': cannot be empty: use one of embedded, ollama, openai"),
    (["compare", "--persona", "team-lead", "--message", "안녕", "--strategies", " "],
     "'--strategies': cannot be empty: use some of plain, system, fewshot, finetuned"),
    (["compare", "--persona", "team-lead", "--message", "안녕", "--format", ""],
     "'--format': cannot be empty: use md or csv"),
    (["sessions", "export", "{ID}", "--format", ""], "'--format': cannot be empty: use md or json"),
    (["personas", "show", ""], f"'ID': cannot be empty: {PERSONA_IDS}"),
    (["personas", "export", " "], f"'ID': cannot be empty: {PERSONA_IDS}"),
])
def test_empty_names_are_a_usage_error_not_the_default(capsys, scripted, tmp_path, monkeypatch,
                                                       args, message):
    """`--strategy ""` used to fall back to the default strategy without a word."""
    monkeypatch.setenv("POLARIS_BACKEND", "scripted")  # what a fall back would have reached
    store = db_store()
    chat = store.create_session(personas=["team-lead"], backend="scripted", model="m",
                                strategy="fewshot", title="그대로")
    args = [a.replace("{ID}", str(chat.id)) for a in args]
    before = files_under(tmp_path) - files_under(tmp_path / "data")

    code, out, err = polaris(capsys, *args)

    assert code == 2 and message in one_line_error(err) and out == ""
    assert "Invalid value for" in err  # Typer's usage error, as for any other bad option
    [summary] = store.list_sessions()
    assert (summary.id, summary.title, summary.messages) == (chat.id, "그대로", 0)
    assert (summary.backend, summary.model, summary.strategy) == ("scripted", "m", "fewshot")
    assert store.list_comparisons() == []
    assert files_under(tmp_path) - files_under(tmp_path / "data") == before
    assert scripted.requests == []


def test_empty_host_is_refused_before_the_server_starts(tmp_path):
    """Streamlit reads an empty address as every interface. A subprocess: were the check
    missing, `run` would exec Streamlit in place of the test process."""
    polaris_bin = Path(sys.executable).with_name("polaris")
    env = {**os.environ, "POLARIS_DATA_DIR": str(tmp_path / "data")}
    try:
        done = subprocess.run([polaris_bin, "run", "--host", "", "--port", "1"], check=False,
                              env=env, capture_output=True, text=True, timeout=60)
    except subprocess.TimeoutExpired:
        pytest.fail("`polaris run --host ''` started a server")
    assert done.returncode == 2 and done.stdout == ""
    assert "'--host': cannot be empty: give an address such as 127.0.0.1" in one_line_error(
        done.stderr)


BACKENDS = "use one of embedded, ollama, openai"
FAMILIES = "use one of gemma3, llama3, chatml, mistral, or leave it out to read it from the GGUF"
EVAL_PERSONA = ["eval", "persona", "--model", "{GGUF}", "--limit", "0", "--ppl-limit", "1"]
REGISTER = ["serve", "register", "{GGUF}", "--persona", "team-lead"]
RESTYLE = ["data", "restyle", "{GOOD}", "{TMP}/out.jsonl", "--teacher-backend", "ollama"]


@pytest.mark.parametrize(("args", "message"), [
    (["eval", "judge", "--backend", "", "--limit", "1"],
     f"'--backend': cannot be empty: {BACKENDS}"),
    (["eval", "judge", "--backend", "scripted", "--model", " ", "--limit", "1"],
     "'--model': cannot be empty: name a GGUF file or the backend's model"),
    (["eval", "judge", "--backend", "scripted", "--data", "", "--limit", "1"],
     "'--data': cannot be empty: give a labelled debates JSONL file"),
    (["eval", "judge", "--backend", "scripted", "--limit", "1", "--out", ""],
     "'--out': cannot be empty: give a folder, or leave it out for runs/eval-judge"),
    (["eval", "persona", "--model", ""], "'--model': cannot be empty: give the base .gguf file"),
    ([*EVAL_PERSONA, "--personas", "team-lead", "--lora", ""], "'--lora': cannot be empty"),
    ([*EVAL_PERSONA, "--personas", ""],
     "'--personas': cannot be empty: use some of team-lead, retired-developer"),
    ([*EVAL_PERSONA, "--personas", " , "], "'--personas': cannot be empty: use some of"),
    ([*EVAL_PERSONA, "--personas", "team-lead", "--compare-persona", ""],
     f"'--compare-persona': cannot be empty: {PERSONA_IDS}"),
    ([*EVAL_PERSONA, "--personas", "team-lead", "--template", ""],
     f"'--template': cannot be empty: {FAMILIES}"),
    ([*EVAL_PERSONA, "--personas", "team-lead", "--out", ""],
     "'--out': cannot be empty: give a folder, or leave it out for runs/eval"),
    (["serve", "modelfile", "{GGUF}", "--persona", ""], f"'--persona': cannot be empty: {PERSONA_IDS}"),
    (["serve", "modelfile", "", "--persona", "team-lead"], "'GGUF': cannot be empty"),
    (["serve", "modelfile", "{GGUF}", "--persona", "team-lead", "--family", ""],
     f"'--family': cannot be empty: {FAMILIES}"),
    (["serve", "modelfile", "{GGUF}", "--persona", "team-lead", "--adapter", ""],
     "'--adapter': cannot be empty: give a LoRA GGUF file, or leave it out for no ADAPTER"),
    (["serve", "modelfile", "{GGUF}", "--persona", "team-lead", "--out", ""],
     "'--out': cannot be empty: give the Modelfile to write, or leave it out to print it"),
    ([*REGISTER, "--name", ""], "'--name': cannot be empty: give the model's name on the server"),
    (["serve", "register", " ", "--name", "critic", "--persona", "team-lead", "--family", "gemma3"],
     "'GGUF': cannot be empty: give a GGUF file or the name of a model the server already has"),
    ([*REGISTER, "--name", "critic", "--host", ""],
     "'--host': cannot be empty: give the Ollama URL"),
    (["serve", "models", "--host", ""], "'--host': cannot be empty: give the Ollama URL"),
    (["serve", "tunnel", "--username", ""], "'--username': cannot be empty"),
    (["data", "validate", "{GOOD}", ""], "'FILES': cannot be empty: give a dataset file"),
    (["data", "stats", " "], "'FILE': cannot be empty: give a dataset file"),
    (["data", "convert", "{GOOD}", "", "--to", "alpaca"], "'OUT': cannot be empty"),
    (["data", "dedup", "{GOOD}", ""], "'OUT': cannot be empty: give the file to write"),
    (["data", "split", ""], "'IN': cannot be empty: give a dataset file"),
    ([*RESTYLE, "--teacher-model", "m", "--persona", ""],
     f"'--persona': cannot be empty: {PERSONA_IDS}"),
    ([*RESTYLE, "--persona", "team-lead", "--teacher-model", ""],
     "'--teacher-model': cannot be empty: name the teacher's model"),
    (["data", "self-instruct", "{GOOD}", "{TMP}/tasks.jsonl", "--n", "1",
      "--teacher-backend", "", "--teacher-model", "m"],
     f"'--teacher-backend': cannot be empty: {BACKENDS}"),
    (["train", "sft", "--config", ""], "'--config': cannot be empty: give a YAML recipe"),
    (["export", "gguf", "", "--out", "{TMP}/gguf"], "'RUN_DIR': cannot be empty"),
    (["export", "gguf", "{TMP}/run", "--out", ""], "'--out': cannot be empty"),
    (["export", "gguf", "{TMP}/run", "--out", "{TMP}/gguf", "--name", ""],
     "'--name': cannot be empty: give a file name stem, or leave it out"),
    (["export", "gguf", "{TMP}/run", "--out", "{TMP}/gguf", "--push-to-hub", ""],
     "'--push-to-hub': cannot be empty: give a Hugging Face repo"),
    (["export", "lora-gguf", "{TMP}/run", "--out", " "], "'--out': cannot be empty"),
])
def test_empty_names_in_the_serve_and_training_commands_are_a_usage_error(
        capsys, scripted, httpserver, tmp_path, monkeypatch, model_path, args, message):
    """`eval judge --backend ""` used to judge with POLARIS_JUDGE_BACKEND, `--out ""` wrote
    into the current folder, `serve register --name ""` went to the server."""
    host = httpserver.url_for("/").rstrip("/")
    monkeypatch.setenv("POLARIS_JUDGE_BACKEND", "scripted")  # what a fall back would reach
    monkeypatch.setenv("POLARIS_OLLAMA_HOST", host)
    monkeypatch.setenv("POLARIS_OPENAI_BASE_URL", f"{host}/v1")
    good = tmp_path / "good.jsonl"
    good.write_text(GOOD_CHAT + "\n", encoding="utf-8")
    args = [a.replace("{GGUF}", str(model_path)).replace("{GOOD}", str(good))
            .replace("{TMP}", str(tmp_path)) for a in args]
    before = files_under(tmp_path) - files_under(tmp_path / "data")

    code, out, err = polaris(capsys, *args)

    assert code == 2 and message in one_line_error(err) and out == ""
    assert "Invalid value for" in err
    assert files_under(tmp_path) - files_under(tmp_path / "data") == before
    assert scripted.requests == [] and httpserver.log == []


@pytest.mark.parametrize("target", ["{TMP}", "/proc/polaris-export.md"])
def test_export_to_an_unwritable_path_is_one_line(capsys, scripted, tmp_path, target):
    chat = db_store().create_session(personas=["team-lead"], backend="scripted", model="m",
                                     strategy="system")
    out = target.replace("{TMP}", str(tmp_path))
    try:
        code, _, err = polaris(capsys, "sessions", "export", chat.id, "--out", out)
    except OSError as exc:
        pytest.fail(f"traceback instead of an error line: {exc!r}")
    assert code == 1 and out in one_line_error(err)
    assert not list(tmp_path.glob(".*.tmp"))


# -- settings values -----------------------------------------------------------------------------

@pytest.mark.parametrize(("key", "value", "message"), [
    ("POLARIS_N_CTX", "abc", "valid integer"),
    ("POLARIS_N_CTX", "10", "greater than or equal to 256"),
    ("POLARIS_MAX_TOKENS", "0", "greater than or equal to 1"),
    ("POLARIS_MAX_TOKENS", "-5", "greater than or equal to 1"),
    ("POLARIS_TEMPERATURE", "-1", "greater than or equal to 0"),
    ("POLARIS_TEMPERATURE", "hot", "valid number"),
    ("POLARIS_STRATEGY", "magic", "unknown strategy 'magic'"),
    ("POLARIS_CHAT_TEMPLATE", "nope", "unknown chat template 'nope'"),
    ("POLARIS_N_THREADS", "0", "greater than or equal to 1"),
    ("POLARIS_REQUEST_TIMEOUT_S", "0", "greater than 0"),
    ("POLARIS_BACKEND", "nope", "unknown backend 'nope'"),
    ("POLARIS_PERSONAS_DIR", "/no/such/folder", "POLARIS_PERSONAS_DIR"),
    ("POLARIS_DATABASE_URL", "not a url", "POLARIS_DATABASE_URL"),
])
def test_bad_setting_exits_2_names_it_and_writes_nothing(capsys, tmp_path, monkeypatch,
                                                         key, value, message):
    monkeypatch.setenv(key, value)
    code, _, err = polaris(capsys, "chat", "team-lead", "안녕하세요")
    assert code == 2 and message in one_line_error(err) and key in err
    database = tmp_path / "data" / "polaris.db"
    assert not database.exists() or Store(f"sqlite:///{database}").list_sessions() == []


def test_database_folder_that_cannot_be_created_is_one_line(capsys, monkeypatch):
    monkeypatch.setenv("POLARIS_DATABASE_URL", "sqlite:////proc/polaris/data.db")
    code, _, err = polaris(capsys, "sessions", "list")
    assert code == 1 and "cannot create the folder /proc/polaris" in one_line_error(err)
    assert "POLARIS_DATABASE_URL" in err
