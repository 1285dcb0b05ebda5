"""polaris data convert | restyle | self-instruct | dedup | split, with a scripted teacher."""

import json
import random
from itertools import permutations

import pytest

from serving.errors import InvalidInput
from serving.persona import load_personas
from tests.cli import polaris
from tests.scripted import ScriptedBackend
from training.convert import convert
from training.formats import DataError, load
from training.quality import is_heldout
from training.restyle import restyle
from training.selfinstruct import self_instruct

PAIRS = [("다음 문장을 영어로 번역하세요.", "Translate, \"please\"."),
         ("퇴사하고 창업해도 될까요?", "아직은 이르다고 봐."),
         ("주어진 숫자 목록의 평균을 구하세요.", "평균은 3입니다.")]
CHAT = [{"messages": [{"role": "user", "content": u}, {"role": "assistant", "content": a}]}
        for u, a in PAIRS]
ALPACA = [{"instruction": u, "input": "", "output": a} for u, a in PAIRS]
COMPLETION = [{"prompt": u, "completion": a} for u, a in PAIRS]
MULTI = [{"messages": [{"role": "system", "content": "너는 팀장이다."},
                       {"role": "user", "content": "그만둘래요."},
                       {"role": "assistant", "content": "왜, 무슨 일 있어?"},
                       {"role": "user", "content": "창업하려고요."},
                       {"role": "assistant", "content": "계획은 있고?"}]}] + CHAT[:1]
SEEDS = [{"id": f"s{k}", "name": f"task{k}", "instruction": text,
          "instances": [{"input": "", "output": "답"}], "is_classification": False}
         for k, text in enumerate(["다음 문장을 영어로 번역하세요.", "주어진 숫자 목록의 평균을 구하세요.",
                                   "짧은 시를 한 편 써 주세요."])]


def jsonl(path, records):
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


def records_of(path):
    return [r.model_dump(exclude_none=True) for r in load(path).records]



# --- convert -------------------------------------------------------------------------------

FORMS = {  # name: (--to, file name, what load() reports)
    "chat": ("chat", "d.chat.jsonl", "chat"),
    "alpaca-jsonl": ("alpaca", "d.alpaca.jsonl", "alpaca"),
    "alpaca-json": ("alpaca", "d.alpaca.json", "alpaca"),
    "completion": ("completion", "d.completion.jsonl", "completion"),
    "csv": ("csv", "d.csv", "chat"),
}
SOURCES = {"chat": CHAT, "alpaca-jsonl": ALPACA, "alpaca-json": ALPACA, "completion": COMPLETION,
           "csv": CHAT}


def make(tmp_path, form, records):
    to, name, _ = FORMS[form]
    if form == "chat":
        return jsonl(tmp_path / name, records)
    source = jsonl(tmp_path / f"src-{name}.jsonl", CHAT)
    convert(source, tmp_path / name, to)
    return tmp_path / name


@pytest.mark.parametrize(("a", "b"), list(permutations(FORMS, 2)))
def test_single_turn_round_trips_are_lossless(tmp_path, a, b):
    first = make(tmp_path, a, SOURCES[a])
    assert records_of(first) == SOURCES[a]
    middle = tmp_path / f"mid-{FORMS[b][1]}"
    convert(first, middle, FORMS[b][0])
    assert load(middle).format == FORMS[b][2] and records_of(middle) == SOURCES[b]
    back = tmp_path / f"back-{FORMS[a][1]}"
    convert(middle, back, FORMS[a][0])
    assert records_of(back) == SOURCES[a]


def test_alpaca_container_follows_the_suffix(tmp_path):
    convert(jsonl(tmp_path / "a.jsonl", ALPACA), tmp_path / "a.json", "alpaca")
    assert json.loads((tmp_path / "a.json").read_text(encoding="utf-8")) == ALPACA


def test_multi_turn_chat_with_system_round_trips_through_csv(tmp_path):
    convert(jsonl(tmp_path / "m.jsonl", MULTI), tmp_path / "m.csv", "csv")
    assert (tmp_path / "m.csv").read_text(encoding="utf-8").splitlines()[:2] == [
        "C_ID,role,content", "1,system,너는 팀장이다."]
    convert(tmp_path / "m.csv", tmp_path / "back.jsonl", "chat")
    assert records_of(tmp_path / "back.jsonl") == MULTI


def test_line_breaks_in_content_survive_csv(tmp_path):
    record = {"messages": [{"role": "user", "content": "첫 줄\n둘째 줄"},
                           {"role": "assistant", "content": "응"}]}
    convert(jsonl(tmp_path / "n.jsonl", [record]), tmp_path / "n.csv", "csv")
    convert(tmp_path / "n.csv", tmp_path / "back.jsonl", "chat")
    assert records_of(tmp_path / "back.jsonl") == [record]


def test_multi_turn_chat_keeps_the_last_exchange_and_folds_the_rest(tmp_path):
    src = jsonl(tmp_path / "m.jsonl", MULTI)
    context = "system: 너는 팀장이다.\nuser: 그만둘래요.\nassistant: 왜, 무슨 일 있어?"
    convert(src, tmp_path / "a.jsonl", "alpaca")
    assert records_of(tmp_path / "a.jsonl") == [
        {"instruction": "창업하려고요.", "input": context, "output": "계획은 있고?"}, ALPACA[0]]
    convert(src, tmp_path / "c.jsonl", "completion")
    assert records_of(tmp_path / "c.jsonl")[0] == {"prompt": f"{context}\n\n창업하려고요.",
                                                   "completion": "계획은 있고?"}
    convert(tmp_path / "a.jsonl", tmp_path / "back.jsonl", "chat")  # input follows instruction
    assert records_of(tmp_path / "back.jsonl")[0]["messages"][0]["content"] == (
        f"창업하려고요.\n\n{context}")


def test_preference_and_seed_convert_to_chat_only(tmp_path):
    pref = jsonl(tmp_path / "p.jsonl", [{"prompt": "P", "chosen": "좋아", "rejected": "싫어"}])
    convert(pref, tmp_path / "pc.jsonl", "chat")
    assert records_of(tmp_path / "pc.jsonl") == [{"messages": [
        {"role": "user", "content": "P"}, {"role": "assistant", "content": "좋아"}]}]
    seed = dict(SEEDS[0], instances=[{"input": "", "output": "A"}, {"input": "안녕", "output": "Hi"}])
    convert(jsonl(tmp_path / "s.jsonl", [seed]), tmp_path / "sc.jsonl", "chat")
    assert [(r["id"], r["topic"], r["messages"][0]["content"])
            for r in records_of(tmp_path / "sc.jsonl")] == [
        ("s0-1", "task0", SEEDS[0]["instruction"]),
        ("s0-2", "task0", SEEDS[0]["instruction"] + "\n\n안녕")]
    with pytest.raises(InvalidInput, match="preference and seed files convert to chat only"):
        convert(pref, tmp_path / "pa.jsonl", "alpaca")
    assert not (tmp_path / "pa.jsonl").exists()


def test_convert_errors_name_file_and_line_and_write_nothing(tmp_path):
    bad = jsonl(tmp_path / "bad.jsonl", [ALPACA[0], {"instruction": "x", "output": ""}])
    out = tmp_path / "out.jsonl"
    with pytest.raises(DataError, match=r"bad\.jsonl:2: field 'output'"):
        convert(bad, out, "chat")
    assert not out.exists()
    out.write_text("old\n", encoding="utf-8")
    with pytest.raises(DataError):
        convert(bad, out, "chat")
    assert out.read_text(encoding="utf-8") == "old\n"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["bad.jsonl", "out.jsonl"]  # no temp left


@pytest.mark.parametrize(("args", "message"), [
    (["convert", "bad.jsonl", "o.jsonl", "--to", "chat"], "bad.jsonl:2: field 'output'"),
    (["convert", "good.jsonl", "o.jsonl", "--to", "yaml"], "unknown format 'yaml'"),
    (["convert", "good.jsonl", "o.jsonl", "--to", "csv"], "needs a .csv file name"),
    (["restyle", "good.jsonl", "o.jsonl", "--persona", "nobody", "--teacher-backend",
      "scripted", "--teacher-model", "m"], "unknown persona 'nobody'"),
    (["restyle", "good.jsonl", "o.jsonl", "--persona", "team-lead", "--teacher-backend",
      "nope", "--teacher-model", "m"], "unknown backend 'nope'"),
    (["restyle", "good.jsonl", "o.csv", "--persona", "team-lead", "--teacher-backend",
      "scripted", "--teacher-model", "m"], "only chat records can be written as CSV"),
    (["self-instruct", "good.jsonl", "o.jsonl", "--n", "3", "--teacher-backend", "scripted",
      "--teacher-model", "m"], "good.jsonl:1: field"),
    (["dedup", "bad.jsonl", "o.jsonl"], "bad.jsonl:2:"),
    (["split", "missing.jsonl"], "missing.jsonl: no such file"),
])
def test_cli_bad_input_exits_2_with_one_line(tmp_path, capsys, scripted, args, message):
    jsonl(tmp_path / "bad.jsonl", [ALPACA[0], {"instruction": "x", "output": ""}])
    jsonl(tmp_path / "good.jsonl", ALPACA)
    code, _, err = polaris(capsys, "data", *args)
    assert code == 2
    assert len(err.strip().splitlines()) == 1 and message in err
    assert not list(tmp_path.glob("o.*")) and scripted.requests == []


# --- restyle -------------------------------------------------------------------------------

TRAITS = '["솔직히 말해서", "~거든"]'


@pytest.fixture
def lead():
    return load_personas()["team-lead"]


def sent(messages):
    """The (id, text) pairs a restyle request carries (the JSON array ending the prompt)."""
    content = messages[-1]["content"]
    return [(i["id"], i["text"]) for i in json.loads(content[content.rindex("\n\n") + 2:])]


def is_traits(messages):
    return "언어학자" in messages[0]["content"]


def teacher(answer):
    """A scripted teacher whose reply is answer(messages)."""
    backend = ScriptedBackend([""])
    backend.on_request = lambda m: backend.replies.__setitem__(0, answer(m))
    return backend


def voiced(messages):
    if is_traits(messages):
        return TRAITS
    return json.dumps([{"id": i, "text": f"솔직히 말해서 {t}"} for i, t in sent(messages)],
                      ensure_ascii=False)


def batches(backend):
    return [[i for i, _ in sent(m)] for m in backend.requests if not is_traits(m)]


def alpaca_file(tmp_path, count):
    return jsonl(tmp_path / "in.jsonl", [{"instruction": f"질문 {n}", "input": "",
                                           "output": f"답 {n}"} for n in range(count)])


def test_restyle_happy_path(tmp_path, lead):
    backend = teacher(voiced)
    out = tmp_path / "out.jsonl"
    assert restyle(alpaca_file(tmp_path, 10), out, lead, backend, batch_size=4) == (10, 0)
    assert records_of(out) == [{"instruction": f"질문 {n}", "input": "",
                                "output": f"솔직히 말해서 답 {n}"} for n in range(10)]
    assert batches(backend) == [["0", "1", "2", "3"], ["4", "5", "6", "7"], ["8", "9"]]
    assert sum(map(is_traits, backend.requests)) == 1
    prompt = backend.requests[1]
    assert lead.name in prompt[0]["content"] and "~거든" in prompt[0]["content"]
    assert "말투로 다시 써" in prompt[1]["content"]
    assert json.loads((tmp_path / "out.jsonl.traits.json").read_text(encoding="utf-8")) == {
        "persona": "team-lead", "traits": ["솔직히 말해서", "~거든"]}
    assert not (tmp_path / "out.jsonl.partial.jsonl").exists()
    assert not (tmp_path / "out.jsonl.failed.jsonl").exists()


def test_restyle_rewrites_every_assistant_turn_of_chat(tmp_path, lead):
    out = tmp_path / "out.jsonl"
    restyle(jsonl(tmp_path / "in.jsonl", MULTI), out, lead, teacher(voiced))
    replies = [[t["content"] for t in r["messages"] if t["role"] != "assistant"]
               for r in records_of(out)]
    assert replies == [[t["content"] for t in r["messages"] if t["role"] != "assistant"]
                       for r in MULTI]
    assert [t["content"] for t in records_of(out)[0]["messages"] if t["role"] == "assistant"] == [
        "솔직히 말해서 왜, 무슨 일 있어?", "솔직히 말해서 계획은 있고?"]


def test_restyle_retries_after_broken_json(tmp_path, lead):
    good = json.dumps([{"id": "0", "text": "좋아"}, {"id": "1", "text": "그렇지"}])
    backend = ScriptedBackend([TRAITS, '[{"id": "0", "text": "좋아"', good])
    out = tmp_path / "out.jsonl"
    assert restyle(alpaca_file(tmp_path, 2), out, lead, backend) == (2, 0)
    assert [r["output"] for r in records_of(out)] == ["좋아", "그렇지"]
    assert len(backend.requests) == 3 and backend.requests[1] == backend.requests[2]


def test_a_record_that_always_fails_is_skipped_and_listed(tmp_path, lead):
    def answer(messages):
        if is_traits(messages):
            return TRAITS
        return json.dumps([{"id": i, "text": "" if i == "2" else f"네, {t}"}
                           for i, t in sent(messages)], ensure_ascii=False)

    backend = teacher(answer)
    src, out = alpaca_file(tmp_path, 5), tmp_path / "out.jsonl"
    assert restyle(src, out, lead, backend, batch_size=8) == (4, 1)
    assert [r["output"] for r in records_of(out)] == ["네, 답 0", "네, 답 1", "네, 답 3",
                                                      "네, 답 4"]
    assert records_of(tmp_path / "out.jsonl.failed.jsonl") == [records_of(src)[2]]
    assert batches(backend) == [["0", "1", "2", "3", "4"]] * 3 + [["0", "1"]] + \
        [["2", "3", "4"]] * 3 + [["2"]] * 3 + [["3", "4"]]


def test_an_interrupted_restyle_resumes_without_redoing_work(tmp_path, lead):
    def crash_on_second_batch(messages):
        if len(batches(first)) == 2:
            raise RuntimeError("killed")
        return voiced(messages)

    first = teacher(crash_on_second_batch)
    src, out = alpaca_file(tmp_path, 7), tmp_path / "out.jsonl"
    with pytest.raises(RuntimeError, match="killed"):
        restyle(src, out, lead, first, batch_size=3)
    assert not out.exists()
    partial = tmp_path / "out.jsonl.partial.jsonl"
    assert [json.loads(line)["id"] for line in partial.read_text().splitlines()] == ["0", "1", "2"]

    second = teacher(voiced)
    assert restyle(src, out, lead, second, batch_size=3) == (7, 0)
    assert not any(map(is_traits, second.requests))  # the traits came from the cache
    assert batches(second) == [["3", "4", "5"], ["6"]]
    assert [r["output"] for r in records_of(out)] == [f"솔직히 말해서 답 {n}" for n in range(7)]
    assert not partial.exists()


def test_restyle_from_the_cli(tmp_path, capsys, scripted):
    scripted.replies = [TRAITS, json.dumps([{"id": "0", "text": "좋아"}])]
    alpaca_file(tmp_path, 1)
    code, _, err = polaris(capsys, "data", "restyle", "in.jsonl", "out.json", "--persona",
                           "team-lead", "--teacher-backend", "scripted", "--teacher-model", "t")
    assert code == 0 and "wrote 1 restyled records to out.json" in err
    assert json.loads((tmp_path / "out.json").read_text(encoding="utf-8"))[0]["output"] == "좋아"


# --- self-instruct -------------------------------------------------------------------------

def task(instruction, output="답"):
    return {"name": "t", "instruction": instruction,
            "instances": [{"input": "", "output": output}], "is_classification": False}


def test_self_instruct_drops_near_duplicates_and_invalid_tasks(tmp_path):
    rounds = [
        [task("다음 문장을 영어로 번역해 주세요."),            # near-duplicate of a seed
         {"name": "x", "instruction": "출력이 없는 과제"},     # invalid: no instances
         task("오늘 날씨를 한 문장으로 설명하세요.")],
        [task("오늘 날씨를 한 문장으로 설명해 주세요."),         # near-duplicate of a new task
         task("좋아하는 음식을 세 가지 나열하세요.")],
    ]
    backend = ScriptedBackend([json.dumps(r, ensure_ascii=False) for r in rounds])
    out = tmp_path / "new.jsonl"
    grown = self_instruct(jsonl(tmp_path / "seeds.jsonl", SEEDS), out, backend, n=2,
                          rng=random.Random(0))
    assert (grown.rounds, grown.duplicates, grown.invalid) == (2, 2, 1)
    assert [(r["id"], r["instruction"]) for r in records_of(out)] == [
        ("gen-0001", "오늘 날씨를 한 문장으로 설명하세요."),
        ("gen-0002", "좋아하는 음식을 세 가지 나열하세요.")]
    first, second = (m[-1]["content"] for m in backend.requests)
    assert all(s["instruction"] in first for s in SEEDS) and "JSON 배열" in first
    assert "오늘 날씨를 한 문장으로 설명하세요." in second  # generated tasks are shown too
    assert not (tmp_path / "new.jsonl.partial.jsonl").exists()


def test_self_instruct_resumes_and_survives_broken_json(tmp_path):
    def crash(messages):
        raise RuntimeError("killed")

    seeds, out = jsonl(tmp_path / "seeds.jsonl", SEEDS), tmp_path / "new.jsonl"
    first = ScriptedBackend(["JSON이 아님", json.dumps([task("첫 번째 새 과제를 하세요.")]), "x"])
    first.on_request = lambda m: len(first.requests) == 3 and crash(m)
    with pytest.raises(RuntimeError):
        self_instruct(seeds, out, first, n=2)
    assert not out.exists()
    second = ScriptedBackend([json.dumps([task("완전히 다른 두 번째 과제입니다.")])])
    grown = self_instruct(seeds, out, second, n=2)
    assert len(second.requests) == 1 and grown.rounds == 1
    assert [r["instruction"] for r in records_of(out)] == ["첫 번째 새 과제를 하세요.",
                                                          "완전히 다른 두 번째 과제입니다."]


# --- dedup and split -----------------------------------------------------------------------

def test_dedup_drops_near_duplicate_prompts(tmp_path, capsys):
    long_input = "회사를 그만두고 카페를 열고 싶은데 모아 둔 돈이 삼천만 원뿐입니다."
    records = ALPACA + [
        {"instruction": "다음 문장을 영어로 번역해 주세요.", "input": "", "output": "x"},  # dup of 0
        {"instruction": "다음 문장을 영어로 번역하세요.", "input": long_input, "output": "y"},
    ]
    jsonl(tmp_path / "in.jsonl", records)
    code, out, _ = polaris(capsys, "data", "dedup", "in.jsonl", "out.jsonl")
    assert code == 0 and "dropped 1 near-duplicates" in out
    assert records_of(tmp_path / "out.jsonl") == records[:3] + records[4:]
    code, out, _ = polaris(capsys, "data", "dedup", "in.jsonl", "all.jsonl", "--threshold", "1")
    assert "dropped 0" in out and len(records_of(tmp_path / "all.jsonl")) == 5


def test_split_writes_train_and_heldout_by_prompt_hash(tmp_path, capsys):
    records = [{"messages": [{"role": "user", "content": f"질문 {n}"},
                             {"role": "assistant", "content": "응"}]} for n in range(60)]
    jsonl(tmp_path / "set.jsonl", records)
    code, out, _ = polaris(capsys, "data", "split", "set.jsonl", "--heldout-percent", "20")
    held = [r for r in records if is_heldout(r["messages"][0]["content"], 20)]
    assert code == 0 and 0 < len(held) < 60
    assert records_of(tmp_path / "set.heldout.jsonl") == held
    assert records_of(tmp_path / "set.train.jsonl") == [r for r in records if r not in held]
    assert f"{60 - len(held)} records" in out
