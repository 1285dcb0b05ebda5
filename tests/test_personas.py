import copy
import json
import re

import pytest
import yaml

from chatbot.charcard import from_card, read_card, to_card
from serving.persona import (
    SHIPPED_DIR,
    PersonaError,
    load_all_personas,
    load_persona,
    load_personas,
    save_persona,
)

STARTING_CRITICS = {"team-lead", "retired-developer", "pessimistic-jobseeker", "late-relative",
                    "calm-realist"}
POLITE_ENDING = re.compile(r"(요|니다|니까|세요|죠)[.?!…]*$")


def test_the_five_starting_critics_are_shipped():
    personas = load_personas()
    assert list(personas) == ["team-lead", "retired-developer", "pessimistic-jobseeker",
                              "late-relative", "calm-realist"]
    for p in personas.values():
        assert len(p.examples) >= 5
        assert p.speech in ("반말", "존댓말") and p.tone in ("에겐", "테토", "neutral")
        assert "한국어" in p.system_prompt


@pytest.mark.parametrize("persona_id", sorted(STARTING_CRITICS))
def test_examples_keep_the_cards_register(persona_id):
    """존댓말 critics end their sentences politely; 반말 critics never do."""
    persona = load_personas()[persona_id]
    for example in persona.examples:
        sentences = [s for s in re.split(r"(?<=[.?!])\s+", example.assistant.strip()) if s]
        polite = [bool(POLITE_ENDING.search(s.strip("\"' "))) for s in sentences]
        if persona.speech == "존댓말":
            assert any(polite), example.assistant
        else:
            assert not any(p for p, s in zip(polite, sentences, strict=True)
                           if not s.rstrip(".?!").endswith("니까")), example.assistant


def write(tmp_path, name, text):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def shipped_text(persona_id="team-lead"):
    return (SHIPPED_DIR / f"{persona_id}.yaml").read_text(encoding="utf-8")


def test_yaml_syntax_error_names_the_line(tmp_path):
    path = write(tmp_path, "broken.yaml", "id: broken\nname: [unclosed\nrole: x\n")
    with pytest.raises(PersonaError, match=r"broken\.yaml:3: not valid YAML"):
        load_persona(path)


def test_bad_field_names_file_line_and_field(tmp_path):
    text = shipped_text().replace("register: 존댓말", "register: 사투리")
    line = text.splitlines().index("register: 사투리") + 1
    path = write(tmp_path, "team-lead.yaml", text)
    with pytest.raises(PersonaError, match=rf"team-lead\.yaml:{line}: field 'register'"):
        load_persona(path)


def test_too_few_examples_is_refused(tmp_path):
    data = yaml.safe_load(shipped_text())
    data["examples"] = data["examples"][:4]
    path = write(tmp_path, "team-lead.yaml", yaml.safe_dump(data, allow_unicode=True))
    with pytest.raises(PersonaError, match="field 'examples'.*at least 5"):
        load_persona(path)


def test_id_must_match_the_file_name(tmp_path):
    path = write(tmp_path, "other.yaml", shipped_text())
    with pytest.raises(PersonaError, match="other.yaml.*rename"):
        load_persona(path)


def test_unknown_field_is_refused(tmp_path):
    path = write(tmp_path, "team-lead.yaml", shipped_text() + "mood: grumpy\n")
    with pytest.raises(PersonaError, match="field 'mood'"):
        load_persona(path)


def test_save_and_load_round_trip(tmp_path):
    persona = load_personas()["late-relative"]
    assert load_persona(save_persona(persona, tmp_path)) == persona


def test_imported_cards_join_the_shipped_ones(tmp_path):
    persona = load_personas()["calm-realist"].model_copy(update={"id": "my-critic"})
    save_persona(persona, tmp_path / "personas")
    personas = load_all_personas(None, tmp_path)
    assert set(personas) == STARTING_CRITICS | {"my-critic"}


def test_character_card_v2_round_trip_of_our_cards():
    for persona in load_personas().values():
        card = to_card(persona)
        assert card["spec"] == "chara_card_v2" and card["data"]["name"] == persona.name
        assert card["data"]["extensions"]["polaris"]["register"] == persona.speech
        assert from_card(json.loads(json.dumps(card))).model_dump(exclude={"card"}) == \
            persona.model_dump(exclude={"card"})


FOREIGN_CARD = {
    "spec": "chara_card_v2",
    "spec_version": "2.0",
    "x_top_level": {"kept": True},
    "data": {
        "name": "Grumpy Coach",
        "description": "은퇴한 축구 코치.",
        "personality": "노력보다 결과를 본다.",
        "scenario": "",
        "first_mes": "뭐 하러 왔어?",
        "mes_example": "\n".join(
            f"<START>\n{{{{user}}}}: 질문 {i}\n{{{{char}}}}: 대답 {i}" for i in range(5)),
        "creator_notes": "notes",
        "system_prompt": "",
        "post_history_instructions": "",
        "alternate_greetings": ["또 왔네"],
        "character_book": {"entries": [{"keys": ["축구"], "content": "공은 둥글다"}]},
        "tags": ["coach"],
        "creator": "someone",
        "character_version": "3",
        "extensions": {"other_app": {"color": "red"}, "depth_prompt": {"depth": 4}},
    },
}


def test_unknown_fields_of_an_imported_card_survive_export(tmp_path):
    path = write(tmp_path, "coach.json", json.dumps(FOREIGN_CARD, ensure_ascii=False))
    persona = read_card(path)
    assert persona.id == "grumpy-coach" and len(persona.examples) == 5
    assert persona.examples[2].user == "질문 2" and persona.examples[2].assistant == "대답 2"
    reloaded = load_persona(save_persona(persona, tmp_path / "personas"))
    card = to_card(reloaded)
    original = copy.deepcopy(FOREIGN_CARD)
    assert card["x_top_level"] == original["x_top_level"]
    for key in ("character_book", "alternate_greetings", "tags", "creator", "creator_notes",
                "character_version"):
        assert card["data"][key] == original["data"][key], key
    assert card["data"]["extensions"]["other_app"] == {"color": "red"}
    assert card["data"]["extensions"]["depth_prompt"] == {"depth": 4}
    assert card["data"]["extensions"]["polaris"]["id"] == "grumpy-coach"


@pytest.mark.parametrize(("text", "message"), [
    ("{not json", r"bad\.json:1: not valid JSON"),
    ('{"spec": "chara_card_v1", "data": {}}', "not a Character Card V2"),
    ('[1, 2]', "must be a JSON object"),
])
def test_bad_card_files_are_refused(tmp_path, text, message):
    with pytest.raises(PersonaError, match=message):
        read_card(write(tmp_path, "bad.json", text))


def test_card_with_too_few_examples_names_the_field(tmp_path):
    card = copy.deepcopy(FOREIGN_CARD)
    card["data"]["mes_example"] = "<START>\n{{user}}: a\n{{char}}: b"
    with pytest.raises(PersonaError, match="field 'examples'"):
        read_card(write(tmp_path, "few.json", json.dumps(card)))
