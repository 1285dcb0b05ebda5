"""Persona cards: YAML files in chatbot/personas/, Character Card V2 on import and export."""

from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from serving.errors import InvalidInput
from serving.files import atomic_write_text

# The product's cards live with the chatbot package; serving and training read them as data.
SHIPPED_DIR = Path(__file__).resolve().parents[1] / "chatbot" / "personas"
SLUG = r"^[a-z0-9][a-z0-9-]{0,62}$"
# The starting critics in the order the product introduces them; other cards follow by name.
STARTING_ORDER = ("team-lead", "retired-developer", "pessimistic-jobseeker", "late-relative",
                  "calm-realist")


class PersonaError(InvalidInput):
    """A persona card is malformed; the message names the file, line and field."""


class Example(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user: str = Field(min_length=1)
    assistant: str = Field(min_length=1)


class Persona(BaseModel):
    # "register" would shadow BaseModel.register, so the attribute has another name.
    model_config = ConfigDict(extra="forbid", populate_by_name=True, serialize_by_alias=True)

    id: str = Field(pattern=SLUG)
    name: str = Field(min_length=1, max_length=80)
    role: str = Field(min_length=1)
    stance: str = Field(min_length=1)
    speech: Literal["반말", "존댓말"] = Field(alias="register")
    tone: Literal["에겐", "테토", "neutral"] = "neutral"
    system_prompt: str = Field(min_length=1, max_length=20_000)
    examples: list[Example] = Field(min_length=5)
    greeting: str = Field(min_length=1)
    concession: str = Field(min_length=1)
    model: str | None = None
    card: dict[str, Any] | None = Field(
        None, description="The rest of an imported Character Card V2, written back on export."
    )

    @field_validator("name", "role", "stance", "system_prompt", "greeting", "concession")
    @classmethod
    def _strip(cls, value: str) -> str:
        value = value.strip()
        if not value:
            raise ValueError("must not be blank")
        return value

    def short_prompt(self) -> str:
        """The one-line prompt used with a persona model fine-tuned on this card."""
        return f"당신은 {self.name}입니다. {self.role}"


def load_persona(path: Path) -> Persona:
    """Load one card; errors say file:line, the field and what is expected."""
    try:
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as exc:
        raise PersonaError(f"{path}: cannot read persona card: {exc}") from None
    try:
        node = yaml.compose(text)
        data = yaml.safe_load(text)
    except yaml.YAMLError as exc:
        mark = getattr(exc, "problem_mark", None)
        where = f"{path}:{mark.line + 1}" if mark else str(path)
        problem = getattr(exc, "problem", None) or str(exc)
        raise PersonaError(f"{where}: not valid YAML ({problem}); fix the syntax") from None
    if not isinstance(data, dict):
        raise PersonaError(f"{path}:1: a persona card must be a YAML mapping of fields")
    try:
        persona = Persona.model_validate(data)
    except ValidationError as exc:
        error = exc.errors()[0]
        loc = error["loc"]
        field = ".".join(str(part) for part in loc) or "(card)"
        line = _line_of(node, loc)
        raise PersonaError(f"{path}:{line}: field '{field}': {error['msg']}") from None
    if persona.id != path.stem:
        raise PersonaError(
            f"{path}:{_line_of(node, ('id',))}: field 'id' is {persona.id!r} but the file is "
            f"named {path.name}: rename one so they match"
        )
    return persona


def _line_of(node: Any, loc: tuple) -> int:
    """Line (1-based) of the deepest YAML node on the path `loc` that exists."""
    line = node.start_mark.line + 1 if node is not None else 1
    for part in loc:
        child = None
        if isinstance(node, yaml.MappingNode):
            child = next((v for k, v in node.value if k.value == part), None)
            if child is None:
                return line
        elif isinstance(node, yaml.SequenceNode) and isinstance(part, int):
            child = node.value[part] if part < len(node.value) else None
        if child is None:
            return line
        node, line = child, child.start_mark.line + 1
    return line


def load_personas(directory: Path | None = None) -> dict[str, Persona]:
    """Every card in `directory` (default: the shipped critics), by id, in file order."""
    directory = directory or SHIPPED_DIR
    if not directory.is_dir():
        raise PersonaError(
            f"personas folder {directory} does not exist: fix POLARIS_PERSONAS_DIR"
        )
    personas = {}
    rank = {pid: i for i, pid in enumerate(STARTING_ORDER)}
    for path in sorted(directory.glob("*.yaml"), key=lambda p: (rank.get(p.stem, 99), p.stem)):
        persona = load_persona(path)
        personas[persona.id] = persona
    if not personas:
        raise PersonaError(f"no persona cards (*.yaml) in {directory}")
    return personas


def persona_dirs(personas_dir: Path | None, data_dir: Path) -> list[Path]:
    """Where cards are read from: the configured (or shipped) folder, then imported ones."""
    dirs = [personas_dir or SHIPPED_DIR]
    imported = data_dir / "personas"
    if imported.is_dir() and imported.resolve() != dirs[0].resolve():
        dirs.append(imported)
    return dirs


def load_all_personas(personas_dir: Path | None, data_dir: Path) -> dict[str, Persona]:
    """Shipped (or configured) critics plus those imported into data_dir/personas."""
    personas: dict[str, Persona] = {}
    for i, directory in enumerate(persona_dirs(personas_dir, data_dir)):
        if i and not any(directory.glob("*.yaml")):
            continue
        personas.update(load_personas(directory))
    return personas


def dump_persona(persona: Persona) -> str:
    data = persona.model_dump(exclude_none=True)
    return yaml.safe_dump(data, allow_unicode=True, sort_keys=False, width=100)


def save_persona(persona: Persona, directory: Path) -> Path:
    """Write a card atomically (temp file then rename)."""
    return atomic_write_text(directory / f"{persona.id}.yaml", dump_persona(persona))
