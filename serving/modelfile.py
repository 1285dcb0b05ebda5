"""Ollama Modelfiles from one typed spec: the model family's template, the persona, parameters.

The same spec feeds `ollama create` through the API (serving/registry_ollama.py), so a printed
Modelfile and a registered model cannot disagree. Text is checked against what Ollama's
Modelfile parser does with it: a \"\"\" ends a block early and characters outside letters, marks,
numbers, punctuation, symbols, space, tab and newline are silently dropped, so both are refused.
"""

import os
import unicodedata
from dataclasses import dataclass, field
from pathlib import Path

from serving.errors import InvalidInput
from serving.lazy import require
from serving.native import quiet_stderr
from serving.persona import Persona
from serving.templates import ChatTemplate, detect_family, get_template
from serving.types import Message

MAX_TEXT_CHARS = 20_000  # per field; a persona card's system_prompt has the same cap
# The notice the Gemma Terms of Use ask to ship with the model; the full terms travel as
# models/GEMMA_TERMS.html.
GEMMA_NOTICE = (
    "Gemma is provided under and subject to the Gemma Terms of Use found at "
    "ai.google.dev/gemma/terms (a copy ships as models/GEMMA_TERMS.html)."
)
PROMPTS = ("short", "full")


class ModelfileError(InvalidInput):
    """Text or a path that a Modelfile cannot carry faithfully."""


def check_text(what: str, text: str, *, limit: int = MAX_TEXT_CHARS) -> str:
    """`text` unchanged if a Modelfile \"\"\" block carries it exactly, else ModelfileError."""
    if len(text) > limit:
        raise ModelfileError(
            f"{what} is {len(text):,} characters, over the {limit:,} a Modelfile field may hold: "
            "shorten it"
        )
    if '"""' in text:
        raise ModelfileError(f'{what} contains """, which would end its Modelfile block early: '
                             "remove it")
    for position, char in enumerate(text):
        if char in " \t\n" or unicodedata.category(char)[0] in "LMNPS":
            continue
        name = unicodedata.name(char, "control character")
        raise ModelfileError(
            f"{what} has U+{ord(char):04X} ({name}) at character {position + 1}, which Ollama's "
            "Modelfile parser drops: remove it or use a plain space"
        )
    return text


def _check_path(what: str, path: str) -> str:
    if not path.strip() or path != path.strip() or '"' in path:
        raise ModelfileError(f"{what} {path!r} cannot be written in a Modelfile: no quotes and no "
                             "leading or trailing spaces")
    return check_text(what, path, limit=4096)


@dataclass(frozen=True)
class ModelSpec:
    """Everything `ollama create` needs for one model; render() is its Modelfile."""

    source: str  # FROM: a GGUF path (relative to the Modelfile) or an Ollama model name
    template: ChatTemplate
    system: str | None = None
    adapter: str | None = None  # ADAPTER: a LoRA GGUF path
    num_ctx: int = 4096
    temperature: float = 0.8
    messages: tuple[Message, ...] = field(default=())
    license: str | None = None

    def __post_init__(self):
        _check_path("FROM", self.source)
        if self.adapter is not None:
            _check_path("ADAPTER", self.adapter)
        if not self.template.ollama_template:
            raise ModelfileError(f"the {self.template.family} template has no Ollama TEMPLATE")
        check_text("TEMPLATE", self.template.ollama_template)
        if self.system is not None:
            check_text("SYSTEM", self.system)
        if self.license is not None:
            check_text("LICENSE", self.license)
        for stop in self.template.stop:
            if '"' in stop or not stop.strip():
                raise ModelfileError(f"stop token {stop!r} cannot be quoted in a Modelfile")
        for i, message in enumerate(self.messages, 1):
            if message["role"] not in ("system", "user", "assistant"):
                raise ModelfileError(f"MESSAGE {i} has role {message['role']!r}: use system, "
                                     "user or assistant")
            check_text(f"MESSAGE {i} ({message['role']})", message["content"])
        if not 256 <= self.num_ctx <= 1_048_576:
            raise ModelfileError(f"num_ctx {self.num_ctx} is out of range: use 256 to 1048576")
        if not 0 <= self.temperature <= 5:
            raise ModelfileError(f"temperature {self.temperature} is out of range: use 0 to 5")

    @property
    def parameters(self) -> dict:
        """PARAMETER lines as the API's `parameters` object."""
        return {
            "stop": list(self.template.stop),
            "num_ctx": self.num_ctx,
            "temperature": self.temperature,
        }

    def render(self, comment: str | None = None) -> str:
        lines = [f"# {line}".rstrip() for line in (comment or "").splitlines()]
        lines.append(f"FROM {self.source}")
        if self.adapter:
            lines.append(f"ADAPTER {self.adapter}")
        lines.append(f'TEMPLATE """{self.template.ollama_template}"""')
        if self.system is not None:
            lines.append(f'SYSTEM """{self.system}"""')
        lines += [f'PARAMETER stop "{stop}"' for stop in self.template.stop]
        lines.append(f"PARAMETER num_ctx {self.num_ctx}")
        lines.append(f"PARAMETER temperature {self.temperature:g}")
        lines += [f'MESSAGE {m["role"]} """{m["content"]}"""' for m in self.messages]
        if self.license is not None:
            lines.append(f'LICENSE """{self.license}"""')
        return "\n".join(lines) + "\n"


def gguf_family(path: Path) -> str:
    """The chat template family of a GGUF, from its metadata (llama.cpp reads only the vocab)."""
    if not path.is_file():
        raise InvalidInput(f"GGUF file {path} does not exist: check the path (or `make models`)")
    llama_cpp = require("llama_cpp", package="llama-cpp-python", extra="embedded",
                        purpose="Reading a GGUF's model family")
    try:
        with quiet_stderr():  # llama.cpp warns about the context even with verbose=False
            vocab = llama_cpp.Llama(model_path=str(path), vocab_only=True, verbose=False)
    except (ValueError, RuntimeError) as exc:
        raise InvalidInput(f"{path} is not a GGUF model llama.cpp can read ({exc})") from None
    try:
        return detect_family(vocab.metadata)
    except ValueError as exc:
        raise InvalidInput(f"{exc} (or pass --family)") from None


def modelfile_path(path: Path, relative_to: Path | None) -> str:
    """How a Modelfile in `relative_to` names `path`: relative paths start with ./ so Ollama
    reads them as files, not as model names to pull."""
    if relative_to is not None and not path.is_absolute():
        path = Path(os.path.relpath(path.resolve(), relative_to.resolve()))
    text = path.as_posix()
    return text if path.is_absolute() or text.startswith(".") else f"./{text}"


def persona_spec(
    source: str,
    persona: Persona,
    template: ChatTemplate | str,
    *,
    adapter: str | None = None,
    prompt: str = "short",
    examples: int = 0,
    num_ctx: int = 4096,
    temperature: float = 0.8,
    license: str | None = None,
) -> ModelSpec:
    """The spec of a persona model. `prompt` short is the one-line prompt a model fine-tuned on
    the card was trained with; full is the card's whole system prompt (for untuned models).
    Gemma models get the Gemma notice as LICENSE unless one is given."""
    if prompt not in PROMPTS:
        raise InvalidInput(f"unknown prompt {prompt!r}: use short or full")
    if examples < 0:
        raise InvalidInput("--examples must be 0 or more")
    if isinstance(template, str):
        template = get_template(template)
    shots: list[Message] = []
    for example in persona.examples[:examples]:
        shots += [Message(role="user", content=example.user),
                  Message(role="assistant", content=example.assistant)]
    if license is None and template.family == "gemma3":
        license = GEMMA_NOTICE
    return ModelSpec(
        source=source,
        template=template,
        system=persona.short_prompt() if prompt == "short" else persona.system_prompt,
        adapter=adapter,
        num_ctx=num_ctx,
        temperature=temperature,
        messages=tuple(shots),
        license=license,
    )
