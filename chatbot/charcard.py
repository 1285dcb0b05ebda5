"""Character Card V2 (spec "chara_card_v2") import and export.

Our own fields travel under data.extensions.polaris; everything else a card carries (other
apps' extensions, character_book, unknown keys) is kept in `raw` and written back untouched.
"""

import copy
import json
import re
from pathlib import Path
from typing import Any

from pydantic import ValidationError

from serving.persona import Persona, PersonaError

SPEC = "chara_card_v2"
SPEC_VERSION = "2.0"
_EXAMPLE_SPLIT = re.compile(r"^<START>\s*$", re.MULTILINE)


def to_card(persona: Persona) -> dict[str, Any]:
    """A V2 card for `persona`; what an imported card carried beyond our fields survives."""
    card = copy.deepcopy(persona.card) if persona.card else {}
    card["spec"] = SPEC
    card["spec_version"] = SPEC_VERSION
    data = card.setdefault("data", {})
    data.update(
        name=persona.name,
        description=persona.role,
        personality=persona.stance,
        scenario=f"사용자가 자신의 목표(북극성)를 {persona.name}에게 설득하려 합니다.",
        first_mes=persona.greeting,
        mes_example=_examples_text(persona),
        system_prompt=persona.system_prompt,
    )
    for key, default in (
        ("creator_notes", ""), ("post_history_instructions", ""), ("alternate_greetings", []),
        ("tags", []), ("creator", "polaris"), ("character_version", "1"),
    ):
        data.setdefault(key, default)
    extensions = data.setdefault("extensions", {})
    extensions["polaris"] = {
        "id": persona.id,
        "register": persona.speech,
        "tone": persona.tone,
        "concession": persona.concession,
        "examples": [e.model_dump() for e in persona.examples],
        **({"model": persona.model} if persona.model else {}),
    }
    return card


def _examples_text(persona: Persona) -> str:
    blocks = [f"<START>\n{{{{user}}}}: {e.user}\n{{{{char}}}}: {e.assistant}" for e in persona.examples]
    return "\n".join(blocks)


def from_card(card: dict[str, Any], source: str = "card") -> Persona:
    """The persona in a V2 card (ours or another app's)."""
    if card.get("spec") != SPEC or not isinstance(card.get("data"), dict):
        raise PersonaError(
            f"{source}: not a Character Card V2 (expected \"spec\": \"{SPEC}\" and a \"data\" object)"
        )
    data = card["data"]
    ours = (data.get("extensions") or {}).get("polaris") or {}
    examples = ours.get("examples") or _parse_examples(data.get("mes_example", ""))
    fields = {
        "id": ours.get("id") or _slug(data.get("name", "")),
        "name": data.get("name", ""),
        "role": data.get("description", ""),
        "stance": data.get("personality") or data.get("description", ""),
        "register": ours.get("register", "존댓말"),
        "tone": ours.get("tone", "neutral"),
        "system_prompt": data.get("system_prompt") or data.get("description", ""),
        "examples": examples,
        "greeting": data.get("first_mes", ""),
        "concession": ours.get("concession") or "구체적인 근거를 보여주면 일부 인정한다.",
        "model": ours.get("model"),
        "card": copy.deepcopy(card),
    }
    try:
        return Persona.model_validate(fields)
    except ValidationError as exc:
        error = exc.errors()[0]
        field = ".".join(str(p) for p in error["loc"])
        raise PersonaError(f"{source}: field '{field}' (from the card): {error['msg']}") from None


def _parse_examples(text: str) -> list[dict[str, str]]:
    pairs = []
    for block in _EXAMPLE_SPLIT.split(text):
        user = re.search(r"\{\{user\}\}:\s*(.+?)(?=\n\{\{char\}\}:|\Z)", block, re.DOTALL)
        char = re.search(r"\{\{char\}\}:\s*(.+?)(?=\n\{\{user\}\}:|\Z)", block, re.DOTALL)
        if user and char:
            pairs.append({"user": user.group(1).strip(), "assistant": char.group(1).strip()})
    return pairs


def _slug(name: str) -> str:
    slug = re.sub(r"[^a-z0-9]+", "-", name.lower()).strip("-")
    return slug or "imported-persona"


def read_card(path: Path) -> Persona:
    """The persona in a Character Card V2 JSON file (PNG cards: export their JSON first)."""
    try:
        card = json.loads(path.read_text(encoding="utf-8"))
    except json.JSONDecodeError as exc:
        raise PersonaError(f"{path}:{exc.lineno}: not valid JSON ({exc.msg})") from None
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{path}: cannot read card: {exc}") from None
    if not isinstance(card, dict):
        raise PersonaError(f"{path}:1: a Character Card must be a JSON object")
    return from_card(card, str(path))


def card_json(card: dict[str, Any]) -> str:
    return json.dumps(card, ensure_ascii=False, indent=2) + "\n"
