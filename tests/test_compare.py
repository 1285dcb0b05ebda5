"""Compare mode: one message over models × strategies, stored, with notes, exported as a table."""

import csv
import io
import os
import sqlite3
from pathlib import Path

import pytest
from alembic import command

from chatbot.compare import (
    Comparer,
    Target,
    comparison_csv,
    comparison_markdown,
    export_comparison,
    parse_strategies,
    parse_targets,
)
from chatbot.store import Store, alembic_config
from serving.backend import register_backend
from serving.embedded import EmbeddedBackend
from serving.errors import InvalidInput
from serving.types import ModelInfo
from tests.cli import polaris
from tests.scripted import ScriptedBackend

ROOT = Path(__file__).resolve().parents[1]
ASK = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."
ALL = ["plain", "system", "fewshot", "finetuned"]


class Shelf:
    """A backend kind serving a fixed set of models, each a scripted backend that says
    '<model>의 답' (so every cell of the table is traceable to its model)."""

    def __init__(self, names=("alpha", "beta"), fail_model: str | None = None):
        self.names = list(names)
        self.fail_model = fail_model
        self.made: dict[str, ScriptedBackend] = {}

    def __call__(self, kind, settings, model=None):
        name = model or self.names[0]
        if name not in self.made:
            backend = ScriptedBackend([f"{name}의 답 | 첫 줄\n둘째 줄"], model=name,
                                      fail_after=0 if name == self.fail_model else None)
            backend.models = lambda: [ModelInfo(n) for n in self.names]
            self.made[name] = backend
        return self.made[name]


SHELF = {"shelf": Shelf()}
register_backend("shelf", lambda settings, model: SHELF["shelf"]("shelf", settings, model))


@pytest.fixture
def shelf():
    SHELF["shelf"] = Shelf()
    return SHELF["shelf"]


@pytest.fixture
def comparer(settings, shelf) -> Comparer:
    return Comparer(settings, backend_factory=shelf)


# -- parsing -------------------------------------------------------------------------------


def test_targets_take_a_backend_prefix_only_when_it_is_a_backend():
    assert parse_targets("alpha, ollama:gemma3-critic,ollama:gemma3:270m,alpha", "shelf") == [
        Target("shelf", "alpha"), Target("ollama", "gemma3-critic"),
        Target("ollama", "gemma3:270m")]
    assert parse_targets("gemma3:270m", "ollama") == [Target("ollama", "gemma3:270m")]
    with pytest.raises(InvalidInput, match="no models"):
        parse_targets(" , ", "shelf")
    assert parse_strategies("plain,fewshot,plain") == ["plain", "fewshot"]
    with pytest.raises(InvalidInput, match="unknown strategy 'oneshot'"):
        parse_strategies("plain,oneshot")


# -- running -------------------------------------------------------------------------------


def test_run_fills_every_cell_with_the_prompt_of_its_strategy(comparer, shelf):
    comparison = comparer.start("team-lead", f"  {ASK}  ",
                                [Target("shelf", "alpha"), Target("shelf", "beta")], ALL)
    assert comparison.question == ASK
    pending = comparer.store.comparison_answers(comparison.id)
    assert [(a.model, a.strategy, a.status) for a in pending] == [
        (m, s, "pending") for m in ("alpha", "beta") for s in ALL]

    answers = comparer.run(comparison.id)
    assert [(a.model, a.strategy, a.status, a.answer) for a in answers] == [
        (m, s, "complete", f"{m}의 답 | 첫 줄\n둘째 줄") for m in ("alpha", "beta") for s in ALL]
    assert all(a.tokens == 6 and a.ttft_s == 0.001 for a in answers)

    plain, system, fewshot, finetuned = shelf.made["alpha"].requests
    persona = comparer.persona("team-lead")
    assert plain == [{"role": "user", "content": ASK}]
    assert system == [{"role": "system", "content": persona.system_prompt},
                      {"role": "user", "content": ASK}]
    assert finetuned == [{"role": "system", "content": persona.short_prompt()},
                         {"role": "user", "content": ASK}]
    # fewshot: 5 retrieved pairs as real turns; the corpus holds this very question
    assert [m["role"] for m in fewshot] == ["system"] + ["user", "assistant"] * 5 + ["user"]
    assert fewshot[1]["content"] == ASK
    assert [m["content"] for m in fewshot[1:11:2]] != [e.user for e in persona.examples]
    assert shelf.made["beta"].requests == shelf.made["alpha"].requests


def test_notes_are_saved_and_survive_a_reopen(comparer, settings):
    comparison = comparer.start("calm-realist", ASK, [Target("shelf", "alpha")], ["system"])
    (answer,) = comparer.run(comparison.id)
    comparer.set_notes(answer.id, "  존댓말 유지, 현실적 조언  ")
    (again,) = Store(settings.database_url).comparison_answers(comparison.id)
    assert again.notes == "존댓말 유지, 현실적 조언"
    assert [c.id for c in Store(settings.database_url).list_comparisons()] == [comparison.id]


def test_one_failing_model_does_not_stop_the_others(settings):
    shelf = Shelf(fail_model="beta")
    comparer = Comparer(settings, backend_factory=shelf)
    comparison = comparer.start("team-lead", ASK,
                                [Target("shelf", "beta"), Target("shelf", "alpha")], ["plain"])
    failed, ok = comparer.run(comparison.id)
    assert (failed.status, failed.answer) == ("error", "")
    assert "scripted failure" in failed.error
    assert (ok.status, ok.model) == ("complete", "alpha")
    assert "| shelf:beta | plain |" in export_comparison(comparer.store, comparison.id, "md")


def test_unknown_model_or_persona_is_refused_before_anything_is_stored(comparer):
    with pytest.raises(InvalidInput, match="unknown model 'gamma' for backend shelf: "
                                           "available: alpha, beta"):
        comparer.start("team-lead", ASK, [Target("shelf", "gamma")], ["plain"])
    with pytest.raises(InvalidInput, match="unknown persona 'nobody'"):
        comparer.start("nobody", ASK, [Target("shelf", "alpha")], ["plain"])
    with pytest.raises(ValueError, match="비어"):
        comparer.start("team-lead", "   ", [Target("shelf", "alpha")], ["plain"])
    assert comparer.store.list_comparisons() == []


def test_only_finetuned_cells_get_the_lora_adapter(tmp_path, monkeypatch, settings):
    adapter = tmp_path / "critic-lora.gguf"
    adapter.write_bytes(b"GGUF")
    settings = settings.model_copy(update={"lora_path": adapter})
    comparer = Comparer(settings)
    cells = comparer.plan("retired-developer", [Target("embedded", "gemma-3-270m-q4_k_m.gguf")],
                          ALL)
    assert [(c.strategy, c.adapter) for c in cells] == [
        ("plain", None), ("system", None), ("fewshot", None), ("finetuned", str(adapter))]
    base = comparer.backend("embedded", "gemma-3-270m-q4_k_m.gguf")
    tuned = comparer.backend("embedded", "gemma-3-270m-q4_k_m.gguf", str(adapter))
    assert isinstance(base, EmbeddedBackend) and base.lora_path is None
    assert tuned.lora_path == adapter
    missing = settings.model_copy(update={"lora_path": tmp_path / "gone.gguf"})
    with pytest.raises(InvalidInput, match="POLARIS_LORA_PATH"):
        Comparer(missing).start("retired-developer", ASK,
                                [Target("embedded", "gemma-3-270m-q4_k_m.gguf")], ["finetuned"])


def _shipped_adapter() -> Path:
    for name in ("critics-lora.gguf", "critics-lora-v1.gguf"):
        if (ROOT / "models" / name).is_file():
            return ROOT / "models" / name
    pytest.fail("no critics LoRA adapter in models/: run `make models` (or train one)")


@pytest.mark.model
def test_real_model_base_against_its_adapter(model_path, settings):
    adapter = _shipped_adapter()
    settings = settings.model_copy(update={"lora_path": adapter, "max_tokens": 6,
                                           "temperature": 0.0})
    comparer = Comparer(settings)
    comparison = comparer.start("retired-developer", ASK,
                                [Target("embedded", model_path.name)], ["plain", "finetuned"])
    plain, tuned = comparer.run(comparison.id)
    assert (plain.status, tuned.status) == ("complete", "complete")
    assert 1 <= plain.tokens <= 6 and 1 <= tuned.tokens <= 6 and tuned.ttft_s > 0
    assert plain.adapter is None and tuned.adapter == str(adapter)
    table = export_comparison(comparer.store, comparison.id, "md")
    assert f"| embedded:{model_path.name} + {adapter.name} | finetuned |" in table


# -- export --------------------------------------------------------------------------------


def _filled(store: Store):
    comparison = store.create_comparison(
        "team-lead", "회사를 그만둘래요",
        [("ollama", "gemma3-critic", "plain", None),
         ("embedded", "base.gguf", "finetuned", "/m/critics-lora.gguf"),
         ("embedded", "base.gguf", "system", None)])
    first, second, third = store.comparison_answers(comparison.id)
    store.update_answer(first.id, answer="숫자로 보면요?\n근거는 | 있나요?", status="complete",
                        notes="짧고 건조함")
    store.update_answer(second.id, answer="그래서", status="interrupted")
    store.update_answer(third.id, status="error", error="Ollama is not reachable")
    return comparison, store.comparison_answers(comparison.id)


def test_markdown_table_is_exact(settings):
    comparison, answers = _filled(Store(settings.database_url))
    assert comparison_markdown(comparison, answers, "팀장님") == (
        f"## 비교 #{comparison.id} — 팀장님 (team-lead)\n"
        "\n"
        "| model | strategy | question | answer | notes |\n"
        "|---|---|---|---|---|\n"
        "| ollama:gemma3-critic | plain | 회사를 그만둘래요 | 숫자로 보면요?<br>근거는 \\| 있나요? "
        "| 짧고 건조함 |\n"
        "| embedded:base.gguf + critics-lora.gguf | finetuned | 회사를 그만둘래요 "
        "| 그래서 (중단됨) |  |\n"
        "| embedded:base.gguf | system | 회사를 그만둘래요 | (오류: Ollama is not reachable) |  |\n"
    )


def test_csv_table_is_exact_and_reads_back(settings):
    comparison, answers = _filled(Store(settings.database_url))
    text = comparison_csv(comparison, answers)
    assert text == (
        "model,strategy,question,answer,notes\n"
        'ollama:gemma3-critic,plain,회사를 그만둘래요,"숫자로 보면요?\n근거는 | 있나요?",짧고 건조함\n'
        "embedded:base.gguf + critics-lora.gguf,finetuned,회사를 그만둘래요,그래서 (중단됨),\n"
        "embedded:base.gguf,system,회사를 그만둘래요,(오류: Ollama is not reachable),\n"
    )
    rows = list(csv.DictReader(io.StringIO(text)))
    assert rows[0]["answer"] == "숫자로 보면요?\n근거는 | 있나요?"


# -- command line --------------------------------------------------------------------------


def test_cli_compare_prints_the_table_and_stores_it(capsys, shelf):
    code, out, err = polaris(capsys, "compare", "--persona", "team-lead", "--message", ASK,
                             "--models", "alpha,shelf:beta", "--strategies", "plain,fewshot",
                             "--backend", "shelf")
    assert code == 0, err
    lines = out.splitlines()
    assert lines[:4] == ["## 비교 #1 — 팀장님 (team-lead)", "",
                         "| model | strategy | question | answer | notes |", "|---|---|---|---|---|"]
    assert lines[4:] == [
        f"| shelf:{m} | {s} | {ASK} | {m}의 답 \\| 첫 줄<br>둘째 줄 |  |"
        for m in ("alpha", "beta") for s in ("plain", "fewshot")]
    assert "comparison 1: 4 answers" in err and "[4/4] shelf:beta · fewshot: ok (6 tokens)" in err
    store = Store(os.environ["POLARIS_DATABASE_URL"])
    (stored,) = store.list_comparisons()
    assert stored.persona == "team-lead" and len(store.comparison_answers(stored.id)) == 4


def test_cli_compare_writes_csv_atomically_and_exports_again(capsys, shelf, tmp_path):
    out_file = tmp_path / "exports" / "compare.csv"
    code, out, err = polaris(capsys, "compare", "--persona", "calm-realist", "--message", ASK,
                             "--models", "shelf:alpha", "--strategies", "system",
                             "--format", "csv", "--out", out_file, "--title", "퇴사 질문")
    assert code == 0, err
    assert out == "" and f"wrote {out_file}" in err
    expected = ("model,strategy,question,answer,notes\n"
                f'shelf:alpha,system,{ASK},"alpha의 답 | 첫 줄\n둘째 줄",\n')
    assert out_file.read_text(encoding="utf-8") == "\ufeff" + expected
    assert [p.name for p in out_file.parent.iterdir()] == ["compare.csv"]  # no temp file left
    code, out, _ = polaris(capsys, "compare", "--export", "1", "--format", "csv")
    assert (code, out) == (0, expected)
    code, out, _ = polaris(capsys, "compare", "--export", "1")
    assert code == 0 and out.startswith("## 비교 #1: 퇴사 질문 — 차분한 현실주의자 (calm-realist)\n")
    code, _, err = polaris(capsys, "compare", "--export", "7")
    assert code == 2 and "comparison 7 does not exist" in err


@pytest.mark.parametrize("args, message", [
    (["--strategies", "plain,oneshot"], "unknown strategy 'oneshot'"),
    (["--models", "shelf:gamma"], "unknown model 'gamma' for backend shelf"),
    (["--models", "nope:thing"], "unknown model 'nope:thing' for backend shelf"),
    (["--persona", "nobody"], "unknown persona 'nobody'"),
    (["--format", "xlsx"], "unknown format 'xlsx'"),
    (["--message", "  "], "메시지가 비어 있습니다"),
])
def test_cli_compare_bad_input_exits_2_with_one_line(capsys, shelf, args, message):
    base = {"--persona": "team-lead", "--message": ASK, "--models": "shelf:alpha",
            "--strategies": "plain"}
    for flag, value in zip(args[::2], args[1::2], strict=True):
        base[flag] = value
    argv = [part for pair in base.items() for part in pair]
    code, out, err = polaris(capsys, "compare", *argv, "--backend", "shelf")
    assert code == 2 and out == ""
    assert err.count("\n") == 1 and err.startswith("polaris: error: ") and message in err
    assert Store(os.environ["POLARIS_DATABASE_URL"]).list_comparisons() == []


def test_cli_compare_needs_persona_and_message(capsys):
    code, _, err = polaris(capsys, "compare", "--models", "alpha")
    assert code == 2 and "--persona ID and --message TEXT" in err


def test_cli_compare_failed_answers_exit_1_after_the_table(capsys):
    SHELF["shelf"] = Shelf(fail_model="beta")
    code, out, err = polaris(capsys, "compare", "--persona", "team-lead", "--message", ASK,
                             "--models", "shelf:alpha,shelf:beta", "--strategies", "plain")
    assert code == 1
    assert "| shelf:beta | plain |" in out and "(오류: scripted failure" in out
    assert err.splitlines()[-1].startswith("polaris: error: 1 of 2 answers failed; first: "
                                           "shelf:beta · plain: scripted failure")


# -- schema --------------------------------------------------------------------------------


def test_an_old_database_upgrades_with_its_sessions_kept(tmp_path):
    url = f"sqlite:///{tmp_path / 'old.db'}"
    store = Store(url)
    with store.engine.begin() as connection:
        config = alembic_config()
        config.attributes["connection"] = connection
        command.downgrade(config, "0001")
    con = sqlite3.connect(tmp_path / "old.db")
    assert "comparison" not in {r[0] for r in con.execute(
        "select name from sqlite_master where type='table'")}
    con.execute("insert into chat_session (title, personas, backend, model, strategy, "
                "created_at, updated_at) values ('옛 대화', '[]', 'e', 'm', 'system', "
                "'2026-01-01', '2026-01-01')")
    con.commit()
    con.close()
    upgraded = Store(url)
    assert [s.title for s in upgraded.list_sessions()] == ["옛 대화"]
    comparison = upgraded.create_comparison("team-lead", "질문", [("e", "m", "plain", None)])
    assert [a.status for a in upgraded.comparison_answers(comparison.id)] == ["pending"]
