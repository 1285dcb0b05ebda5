"""`polaris eval judge`: the judge over the labelled debates, scored against the labels."""

import json

import pytest

from serving.judge import STATES
from tests.cli import polaris
from tests.scripted import ScriptedBackend
from training.judge_eval import (
    _ranks,
    debate_request,
    evaluate_judge,
    load_debates,
    model_label,
    report_markdown,
)

DEBATES = load_debates(limit=6)


def labelled(transform=lambda score: score, states=lambda state: state):
    """A scripted judge that answers each debate with (a transform of) its labels."""
    def answer(messages, schema):
        prompt = messages[1]["content"]
        debate = next(d for d in DEBATES if f"목표: {d.goal.title}" in prompt)
        return json.dumps({
            critic: {"objections": {f"o{i}": {"state": states(o.state), "reason": "라벨"}
                                    for i, o in enumerate(label.objections, 1)},
                     "new_objections": [], "score": transform(label.score)}
            for critic, label in debate.labels.items()
        })
    return answer


def scripted_judge(script, n: int = 6) -> ScriptedBackend:
    backend = ScriptedBackend(model="judge-script")
    backend.judgements = [script] * n
    return backend


def test_the_judge_set_holds_objections_as_an_open_ledger(personas=None):
    from serving.persona import load_personas

    goal, critics, turns, ledger = debate_request(DEBATES[0], load_personas())
    label = DEBATES[0].labels
    assert [c.id for c in critics] == DEBATES[0].critics and critics[0].stance
    assert len(turns) == len(DEBATES[0].turns) and goal.title == DEBATES[0].goal.title
    for critic, entry in ledger.items():
        assert [o.text for o in entry.objections] == [o.text for o in label[critic].objections]
        assert {o.state for o in entry.objections} == {"open"}


def test_a_judge_that_agrees_with_the_labels_scores_perfectly():
    from serving.persona import load_personas

    report = evaluate_judge(scripted_judge(labelled()), DEBATES, load_personas())
    assert report.failed == 0 and report.critics == sum(len(d.critics) for d in DEBATES)
    assert report.pearson == pytest.approx(1.0) and report.spearman == pytest.approx(1.0)
    assert report.mae == 0 and report.state_agreement == 1.0
    assert report.resolved_agreement == 1.0 and report.mean_attempts == 1.0
    assert sum(report.confusion[s][s] for s in STATES) == sum(
        len(label.objections) for d in DEBATES for label in d.labels.values())


def test_a_contrary_judge_is_measured_as_such():
    from serving.persona import load_personas

    flip = {"open": "conceded", "addressed": "open", "conceded": "open"}
    report = evaluate_judge(scripted_judge(labelled(lambda s: 100 - s, flip.get)), DEBATES,
                            load_personas())
    assert report.pearson == pytest.approx(-1.0) and report.spearman == pytest.approx(-1.0)
    assert report.state_agreement == 0.0 and report.resolved_agreement == 0.0
    markdown = report_markdown(report)
    assert "| score Pearson r | -1.00 |" in markdown
    assert "| objection state agreement | 0.00 |" in markdown


def test_debates_the_judge_cannot_answer_are_counted_as_failures():
    from serving.persona import load_personas

    backend = ScriptedBackend()
    backend.judgements = ["모르겠어요"] * 3 + [labelled()] * 5
    report = evaluate_judge(backend, DEBATES[:2], load_personas(), retries=2)
    assert report.failed == len(DEBATES[0].critics)
    assert report.critics == len(DEBATES[0].critics) + len(DEBATES[1].critics)
    assert report.mean_attempts == 2.0  # 3 tries, then 1
    assert "no JSON object" in report_markdown(report)


def test_spearman_ranks_share_ties():
    assert _ranks([10, 30, 10, 20]) == [1.5, 4.0, 1.5, 3.0]


def test_cli_reports_numbers_and_writes_files(scripted, capsys, tmp_path):
    scripted.judgements = [labelled()] * 6
    code, out, err = polaris(capsys, "eval", "judge", "--backend", "scripted", "--limit", "6",
                             "--out", tmp_path / "rep", "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["debates"] == 6 and metrics["failed"] == 0
    assert metrics["pearson"] == pytest.approx(1.0) and metrics["state_agreement"] == 1.0
    saved = json.loads((tmp_path / "rep" / "judge-report.json").read_text(encoding="utf-8"))
    assert len(saved["results"]) == metrics["critics"]
    assert (tmp_path / "rep" / "judge-report.md").read_text(encoding="utf-8").startswith(
        "# Judge evaluation: scripted / script")
    assert "debate-001: ok" in err


def test_cli_refuses_an_unknown_backend(capsys, tmp_path):
    code, _out, err = polaris(capsys, "eval", "judge", "--backend", "nope", "--out", tmp_path)
    assert code == 2 and "unknown backend 'nope'" in err


@pytest.mark.slow
@pytest.mark.model
def test_real_model_judge_over_two_debates(model_path, capsys, tmp_path):
    code, out, err = polaris(capsys, "eval", "judge", "--backend", "embedded", "--model",
                             model_path, "--limit", "2", "--max-tokens", "400",
                             "--out", tmp_path, "--json")
    assert code == 0, err
    metrics = json.loads(out)
    assert metrics["debates"] == 2 and metrics["failed"] == 0  # grammar: always parses


def test_the_report_names_the_adapter_the_judge_ran_with(model_path, tmp_path):
    from serving.embedded import EmbeddedBackend

    adapter = tmp_path / "critics-lora.gguf"
    assert model_label(EmbeddedBackend(model_path)) == model_path.name
    assert (model_label(EmbeddedBackend(model_path, lora_path=adapter))
            == f"{model_path.name} + critics-lora.gguf")
    assert model_label(ScriptedBackend()) == ScriptedBackend().model
