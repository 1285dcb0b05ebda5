"""Chat templates per model family, rendered by us rather than by llama.cpp.

llama.cpp's built-in "gemma" format drops the system message, and a GGUF exported from a base
model carries no template at all, so Polaris owns the prompt format. A template renders to
segments: special tokens (parsed as control tokens) and plain text (tokenized as text, so a user
typing "<end_of_turn>" cannot forge a turn boundary).
"""

from collections.abc import Sequence
from dataclasses import dataclass

from serving.types import Message


@dataclass(frozen=True)
class Segment:
    """A piece of the prompt. `role` is the message it belongs to (None for turn headers),
    which is how training masks everything but the assistant's own words."""

    text: str
    special: bool = False
    role: str | None = None


@dataclass(frozen=True)
class ChatTemplate:
    """One model family's turn markup: how roles are wrapped and which tokens end a turn."""

    family: str
    bos: str
    turn_start: str  # special token opening a turn ("" when the role header is plain text)
    turn_end: str  # special token closing a turn
    role_names: dict[str, str]
    header_sep: str  # plain text between the role name and the content
    after_turn: str  # plain text after turn_end
    stop: tuple[str, ...]  # special tokens that end generation
    has_system_role: bool = True
    # The same markup as an Ollama Modelfile TEMPLATE (Go text/template over .Messages). It
    # renders exactly render_text() without the BOS, which Ollama's tokenizer adds itself;
    # tests/test_modelfile.py pins both to the same literal prompts.
    ollama_template: str = ""

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[Segment]:
        """Segments of the prompt; the system message is folded into the first user turn
        for families without a system role (Gemma), exactly as their own templates do."""
        turns = _fold_system(messages) if not self.has_system_role else list(messages)
        segments = [Segment(self.bos, special=True)] if self.bos else []
        for message in turns:
            role = message["role"]
            segments += self._turn_header(role)
            segments.append(Segment(message["content"], role=role))
            segments.append(Segment(self.turn_end, special=True, role=role))
            if self.after_turn:
                segments.append(Segment(self.after_turn, role=role))
        if add_generation_prompt:
            segments += self._turn_header("assistant")
        return _nonempty(segments)

    def render_text(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> str:
        return "".join(s.text for s in self.render(messages, add_generation_prompt))

    def _turn_header(self, role: str) -> list[Segment]:
        name = self.role_names[role]
        if self.family == "llama3":
            return [
                Segment("<|start_header_id|>", special=True),
                Segment(name),
                Segment("<|end_header_id|>", special=True),
                Segment(self.header_sep),
            ]
        return [Segment(self.turn_start, special=True), Segment(name + self.header_sep)]


class MistralTemplate(ChatTemplate):
    """[INST] blocks; Mistral has no system role and puts it before the last user message."""

    def render(self, messages: Sequence[Message], add_generation_prompt: bool = True) -> list[Segment]:
        system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
        turns = [m for m in messages if m["role"] != "system"]
        last_user = max((i for i, m in enumerate(turns) if m["role"] == "user"), default=-1)
        segments = [Segment(self.bos, special=True)]
        for i, message in enumerate(turns):
            content, role = message["content"], message["role"]
            if role == "user":
                if i == last_user and system:
                    content = f"{system}\n\n{content}"
                segments += [Segment("[INST]", special=True), Segment(f" {content} ", role=role)]
                segments.append(Segment("[/INST]", special=True))
            else:
                segments += [Segment(f" {content}", role=role),
                             Segment(self.turn_end, special=True, role=role)]
        return _nonempty(segments)


def _fold_system(messages: Sequence[Message]) -> list[Message]:
    system = "\n\n".join(m["content"] for m in messages if m["role"] == "system")
    turns = [dict(m) for m in messages if m["role"] != "system"]
    if system:
        if turns and turns[0]["role"] == "user":
            turns[0]["content"] = f"{system}\n\n{turns[0]['content']}"
        else:
            turns.insert(0, {"role": "user", "content": system})
    return turns  # type: ignore[return-value]


def _nonempty(segments: list[Segment]) -> list[Segment]:
    """Drop empty pieces. Neighbouring text is deliberately not joined: each message's words
    are tokenized on their own, exactly as a reply is generated after its turn header, so
    training and inference see the same token ids."""
    return [seg for seg in segments if seg.text]


# Ollama hands a .Messages template every message (consecutive ones of the same role merged
# with a blank line) and .System, all system messages joined by a blank line.
_GEMMA3_GO = """{{- $folded := not $.System }}
{{- range .Messages }}
{{- if eq .Role "user" }}<start_of_turn>user
{{ if not $folded }}{{ $.System }}

{{ end }}{{ .Content }}<end_of_turn>
{{ $folded = true }}
{{- else if eq .Role "assistant" }}
{{- if not $folded }}<start_of_turn>user
{{ $.System }}<end_of_turn>
{{ $folded = true }}
{{- end }}<start_of_turn>model
{{ .Content }}<end_of_turn>
{{ end }}
{{- end }}
{{- if not $folded }}<start_of_turn>user
{{ $.System }}<end_of_turn>
{{ end }}<start_of_turn>model
"""
_LLAMA3_GO = """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""
_CHATML_GO = """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
_MISTRAL_GO = """{{- $lastUser := -1 }}
{{- range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}
{{- range $i, $m := .Messages }}
{{- if eq $m.Role "user" }}[INST] {{ if and (eq $i $lastUser) $.System }}{{ $.System }}

{{ end }}{{ $m.Content }} [/INST]
{{- else if eq $m.Role "assistant" }} {{ $m.Content }}</s>
{{- end }}
{{- end }}"""

GEMMA3 = ChatTemplate(
    family="gemma3",
    bos="<bos>",
    turn_start="<start_of_turn>",
    turn_end="<end_of_turn>",
    role_names={"user": "user", "assistant": "model"},
    header_sep="\n",
    after_turn="\n",
    stop=("<end_of_turn>", "<eos>"),
    has_system_role=False,
    ollama_template=_GEMMA3_GO,
)
LLAMA3 = ChatTemplate(
    family="llama3",
    bos="<|begin_of_text|>",
    turn_start="",
    turn_end="<|eot_id|>",
    role_names={"system": "system", "user": "user", "assistant": "assistant"},
    header_sep="\n\n",
    after_turn="",
    stop=("<|eot_id|>", "<|end_of_text|>"),
    ollama_template=_LLAMA3_GO,
)
CHATML = ChatTemplate(
    family="chatml",
    bos="",
    turn_start="<|im_start|>",
    turn_end="<|im_end|>",
    role_names={"system": "system", "user": "user", "assistant": "assistant"},
    header_sep="\n",
    after_turn="\n",
    stop=("<|im_end|>", "<|endoftext|>"),
    ollama_template=_CHATML_GO,
)
MISTRAL = MistralTemplate(
    family="mistral",
    bos="<s>",
    turn_start="[INST]",
    turn_end="</s>",
    role_names={"user": "user", "assistant": "assistant"},
    header_sep="",
    after_turn="",
    stop=("</s>",),
    has_system_role=False,
    ollama_template=_MISTRAL_GO,
)

FAMILIES: dict[str, ChatTemplate] = {t.family: t for t in (GEMMA3, LLAMA3, CHATML, MISTRAL)}

_ARCHITECTURES = {
    "gemma": "gemma3", "gemma2": "gemma3", "gemma3": "gemma3", "gemma3n": "gemma3",
    "llama": "llama3", "qwen2": "chatml", "qwen3": "chatml", "qwen2moe": "chatml",
    "mistral": "mistral", "mistral3": "mistral",
}
_TEMPLATE_MARKERS = (
    ("<start_of_turn>", "gemma3"),
    ("<|start_header_id|>", "llama3"),
    ("<|im_start|>", "chatml"),
    ("[INST]", "mistral"),
)


def get_template(family: str) -> ChatTemplate:
    try:
        return FAMILIES[family]
    except KeyError:
        raise ValueError(
            f"unknown chat template {family!r}: use one of {', '.join(FAMILIES)}"
        ) from None


def detect_family(metadata: dict[str, str]) -> str:
    """The family of a GGUF from its embedded chat template, else its architecture."""
    embedded = metadata.get("tokenizer.chat_template", "")
    for marker, family in _TEMPLATE_MARKERS:
        if marker in embedded:
            return family
    arch = metadata.get("general.architecture", "")
    if arch in _ARCHITECTURES:
        return _ARCHITECTURES[arch]
    raise ValueError(
        f"cannot tell the chat template of a {arch or 'unknown'!s} model: "
        f"set POLARIS_CHAT_TEMPLATE to one of {', '.join(FAMILIES)}"
    )
