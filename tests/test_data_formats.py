import json

import pytest

from training.formats import DataError, detect_format, load

CHAT = {"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"},
                     {"role": "assistant", "content": "A"}]}


def write_lines(tmp_path, name, records):
    path = tmp_path / name
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in records),
                    encoding="utf-8")
    return path


@pytest.mark.parametrize(("record", "name"), [
    (CHAT, "chat"),
    ({"instruction": "i", "input": "", "output": "o"}, "alpaca"),
    ({"prompt": "p", "completion": "c"}, "completion"),
    ({"prompt": "p", "chosen": "c", "rejected": "r"}, "preference"),
    ({"id": "s1", "name": "n", "instruction": "i", "instances": [{"input": "", "output": "o"}],
      "is_classification": False}, "seed"),
])
def test_each_format_is_detected_and_loads(tmp_path, record, name):
    assert detect_format(record) == name
    dataset = load(write_lines(tmp_path, "d.jsonl", [record, record]))
    assert dataset.format == name and len(dataset) == 2 and dataset.lines == [1, 2]


@pytest.mark.parametrize(("record", "message"), [
    ({"messages": [{"role": "user", "content": "U"}, {"role": "user", "content": "U2"}]},
     r"d\.jsonl:2: messages\[1\] is 'user' but 'assistant' was expected"),
    ({"messages": [{"role": "user", "content": "U"}, {"role": "assistant", "content": " "}]},
     r"d\.jsonl:2: field 'messages\[1\]\.content': must not be blank"),
    ({"messages": [{"role": "user", "content": "U"}, {"role": "bot", "content": "A"}]},
     r"d\.jsonl:2: field 'messages\[1\]\.role'"),
    ({"messages": [{"role": "system", "content": "S"}, {"role": "user", "content": "U"}]},
     r"d\.jsonl:2: a conversation must end with an assistant turn"),
    ({"messages": CHAT["messages"], "extra": 1}, r"d\.jsonl:2: field 'extra'"),
])
def test_chat_errors_name_file_line_and_field(tmp_path, record, message):
    with pytest.raises(DataError, match=message):
        load(write_lines(tmp_path, "d.jsonl", [CHAT, record]))


def test_broken_json_and_mixed_formats_are_refused(tmp_path):
    path = tmp_path / "bad.jsonl"
    path.write_text(json.dumps(CHAT) + "\n{oops\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.jsonl:2: not valid JSON"):
        load(path)
    mixed = write_lines(tmp_path, "mixed.jsonl", [CHAT, {"prompt": "p", "completion": "c"}])
    with pytest.raises(DataError, match=r"mixed\.jsonl:2: a completion record in a chat file"):
        load(mixed)
    unknown = write_lines(tmp_path, "u.jsonl", [{"question": "q"}])
    with pytest.raises(DataError, match=r"u\.jsonl:1: cannot tell the format"):
        load(unknown)
    with pytest.raises(DataError, match="no such file"):
        load(tmp_path / "missing.jsonl")


def test_preference_needs_different_answers(tmp_path):
    same = write_lines(tmp_path, "p.jsonl", [{"prompt": "p", "chosen": "x", "rejected": "x"}])
    with pytest.raises(DataError, match="p.jsonl:1: chosen and rejected are the same"):
        load(same)


def test_alpaca_json_array_reports_the_line_of_the_bad_item(tmp_path):
    path = tmp_path / "a.json"
    path.write_text('[\n  {"instruction": "a", "output": "b"},\n  {"instruction": "c",\n'
                    '   "output": ""}\n]\n', encoding="utf-8")
    with pytest.raises(DataError, match=r"a\.json:3: field 'output'"):
        load(path)


def test_csv_groups_turns_by_conversation_id(tmp_path):
    path = tmp_path / "c.csv"
    path.write_text("C_ID,role,content\n1,user,안녕\n1,assistant,네\n2,user,뭐\n2,assistant,응\n",
                    encoding="utf-8")
    dataset = load(path)
    assert dataset.format == "chat" and dataset.lines == [2, 4]
    assert [m.content for m in dataset.records[1].messages] == ["뭐", "응"]
    bad = tmp_path / "bad.csv"
    bad.write_text("id,role,text\n", encoding="utf-8")
    with pytest.raises(DataError, match=r"bad\.csv:1: CSV header lacks C_ID, content"):
        load(bad)
