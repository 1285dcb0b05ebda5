"""Ollama Modelfiles: the Go TEMPLATE renders exactly our prompts; whole files; refused text."""

import json
import re
import shutil
import subprocess
from pathlib import Path

import pytest
import yaml

from serving.modelfile import GEMMA_NOTICE, ModelfileError, ModelSpec, check_text, persona_spec
from serving.persona import Persona, load_personas
from serving.templates import FAMILIES, get_template
from tests.cli import polaris

ROOT = Path(__file__).resolve().parents[1]

CONVERSATIONS = {
    "system_user": [{"role": "system", "content": "SYS"}, {"role": "user", "content": "U1"}],
    "multi_turn": [
        {"role": "system", "content": "SYS"},
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ],
    "no_system": [
        {"role": "user", "content": "U1"},
        {"role": "assistant", "content": "A1"},
        {"role": "user", "content": "U2"},
    ],
    "assistant_first": [
        {"role": "system", "content": "SYS"},
        {"role": "assistant", "content": "A0"},
        {"role": "user", "content": "U1"},
    ],
    "two_systems": [
        {"role": "system", "content": "S1"},
        {"role": "user", "content": "U1"},
        {"role": "system", "content": "S2"},
        {"role": "user", "content": "U2"},
    ],
    "korean": [
        {"role": "system", "content": "당신은 팀장님입니다.\n숫자로 말합니다."},
        {"role": "user", "content": "그만둘까요? {{ .Role }} <end_of_turn>"},
    ],
}

# The prompt text after the BOS (Ollama's tokenizer adds the BOS; our renderer writes it).
G, GM = "<start_of_turn>user\n", "<start_of_turn>model\n"
E = "<end_of_turn>\n"
H = "<|start_header_id|>{}<|end_header_id|>\n\n"
EXPECTED = {
    "gemma3": {
        "system_user": f"{G}SYS\n\nU1{E}{GM}",
        "multi_turn": f"{G}SYS\n\nU1{E}{GM}A1{E}{G}U2{E}{GM}",
        "no_system": f"{G}U1{E}{GM}A1{E}{G}U2{E}{GM}",
        "assistant_first": f"{G}SYS{E}{GM}A0{E}{G}U1{E}{GM}",
        "two_systems": f"{G}S1\n\nS2\n\nU1{E}{G}U2{E}{GM}",
        "korean": f"{G}당신은 팀장님입니다.\n숫자로 말합니다.\n\n그만둘까요? {{{{ .Role }}}} "
                  f"<end_of_turn>{E}{GM}",
    },
    "llama3": {
        "system_user": H.format("system") + "SYS<|eot_id|>" + H.format("user") + "U1<|eot_id|>"
                       + H.format("assistant"),
        "multi_turn": H.format("system") + "SYS<|eot_id|>" + H.format("user") + "U1<|eot_id|>"
                      + H.format("assistant") + "A1<|eot_id|>" + H.format("user")
                      + "U2<|eot_id|>" + H.format("assistant"),
        "no_system": H.format("user") + "U1<|eot_id|>" + H.format("assistant") + "A1<|eot_id|>"
                     + H.format("user") + "U2<|eot_id|>" + H.format("assistant"),
        "assistant_first": H.format("system") + "SYS<|eot_id|>" + H.format("assistant")
                           + "A0<|eot_id|>" + H.format("user") + "U1<|eot_id|>"
                           + H.format("assistant"),
        "two_systems": H.format("system") + "S1<|eot_id|>" + H.format("user") + "U1<|eot_id|>"
                       + H.format("system") + "S2<|eot_id|>" + H.format("user") + "U2<|eot_id|>"
                       + H.format("assistant"),
        "korean": H.format("system") + "당신은 팀장님입니다.\n숫자로 말합니다.<|eot_id|>"
                  + H.format("user") + "그만둘까요? {{ .Role }} <end_of_turn><|eot_id|>"
                  + H.format("assistant"),
    },
    "chatml": {
        "system_user": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
                       "<|im_start|>assistant\n",
        "multi_turn": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
                      "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
                      "<|im_start|>assistant\n",
        "no_system": "<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\nA1<|im_end|>\n"
                     "<|im_start|>user\nU2<|im_end|>\n<|im_start|>assistant\n",
        "assistant_first": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>assistant\nA0"
                           "<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n<|im_start|>assistant\n",
        "two_systems": "<|im_start|>system\nS1<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
                       "<|im_start|>system\nS2<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
                       "<|im_start|>assistant\n",
        "korean": "<|im_start|>system\n당신은 팀장님입니다.\n숫자로 말합니다.<|im_end|>\n"
                  "<|im_start|>user\n그만둘까요? {{ .Role }} <end_of_turn><|im_end|>\n"
                  "<|im_start|>assistant\n",
    },
    "mistral": {
        "system_user": "[INST] SYS\n\nU1 [/INST]",
        "multi_turn": "[INST] U1 [/INST] A1</s>[INST] SYS\n\nU2 [/INST]",
        "no_system": "[INST] U1 [/INST] A1</s>[INST] U2 [/INST]",
        "assistant_first": " A0</s>[INST] SYS\n\nU1 [/INST]",
        "two_systems": "[INST] U1 [/INST][INST] S1\n\nS2\n\nU2 [/INST]",
        "korean": "[INST] 당신은 팀장님입니다.\n숫자로 말합니다.\n\n그만둘까요? {{ .Role }} "
                  "<end_of_turn> [/INST]",
    },
}
CASES = [(family, name) for family in EXPECTED for name in CONVERSATIONS]


@pytest.mark.parametrize(("family", "name"), CASES)
def test_our_renderer_gives_the_expected_prompt(family, name):
    template = get_template(family)
    assert template.render_text(CONVERSATIONS[name]) == template.bos + EXPECTED[family][name]


# Executes a .Messages TEMPLATE the way Ollama does: Go's text/template, with the messages
# collated first (consecutive same-role messages merged, .System = every system message joined
# by a blank line), as Ollama's template package does before executing.
GO_RUNNER = r"""package main

import (
	"encoding/json"
	"os"
	"strings"
	"text/template"
)

type message struct {
	Role    string `json:"role"`
	Content string `json:"content"`
}

type job struct {
	Template string    `json:"template"`
	Messages []message `json:"messages"`
}

func collate(msgs []message) (string, []*message) {
	var system []string
	var collated []*message
	for i := range msgs {
		if msgs[i].Role == "system" {
			system = append(system, msgs[i].Content)
		}
		if len(collated) > 0 && collated[len(collated)-1].Role == msgs[i].Role {
			collated[len(collated)-1].Content += "\n\n" + msgs[i].Content
		} else {
			collated = append(collated, &msgs[i])
		}
	}
	return strings.Join(system, "\n\n"), collated
}

func main() {
	var jobs []job
	if err := json.NewDecoder(os.Stdin).Decode(&jobs); err != nil {
		panic(err)
	}
	out := []string{}
	for _, j := range jobs {
		tmpl := template.Must(template.New("").Parse(j.Template))
		system, messages := collate(j.Messages)
		var b strings.Builder
		if err := tmpl.Execute(&b, map[string]any{"System": system, "Messages": messages}); err != nil {
			panic(err)
		}
		out = append(out, b.String())
	}
	json.NewEncoder(os.Stdout).Encode(out)
}
"""


@pytest.fixture(scope="module")
def go_rendered(tmp_path_factory) -> dict:
    go = shutil.which("go")
    if go is None:
        pytest.skip("Go is not installed (Debian: apt-get install golang-go); the literal "
                    "prompts and the pinned Modelfiles still hold both sides in place")
    source = tmp_path_factory.mktemp("go") / "main.go"
    source.write_text(GO_RUNNER)
    jobs = [{"template": get_template(f).ollama_template, "messages": CONVERSATIONS[n]}
            for f, n in CASES]
    done = subprocess.run([go, "run", str(source)], check=False, input=json.dumps(jobs), text=True,
                          capture_output=True, timeout=300,
                          env={"GOCACHE": str(source.parent / "cache"), "HOME": str(source.parent),
                               "PATH": "/usr/bin:/bin"})
    assert done.returncode == 0, done.stderr
    return dict(zip(CASES, json.loads(done.stdout), strict=True))


@pytest.mark.parametrize(("family", "name"), CASES)
def test_the_go_template_renders_the_same_prompt(go_rendered, family, name):
    assert go_rendered[(family, name)] == EXPECTED[family][name]


def test_every_family_has_a_template():
    assert all(t.ollama_template for t in FAMILIES.values())


# -- whole Modelfiles --------------------------------------------------------------------------

GEMMA3_TEMPLATE = '''{{- $folded := not $.System }}
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
'''

SHIPPED = f'''# Polaris persona model: 팀장님 (team-lead), gemma3 chat template.
# Rendered by `polaris serve modelfile`; re-render instead of editing by hand.
# Create it: ollama create NAME -f Modelfile (or `polaris serve register`).
# ADAPTER: Ollama's own engine (gemma3 included) answers "loras are not yet
# implemented" and recent Ollama refuses ADAPTER; there, register the merged GGUF
# from `polaris export gguf` instead.
FROM ./models/gemma-3-270m-q4_k_m.gguf
ADAPTER ./models/critics-lora.gguf
TEMPLATE """{GEMMA3_TEMPLATE}"""
SYSTEM """당신은 팀장님입니다. IT 회사에서 10년 넘게 팀을 이끌어 온, 숫자와 근거로만 판단하는 팀장입니다."""
PARAMETER stop "<end_of_turn>"
PARAMETER stop "<eos>"
PARAMETER num_ctx 4096
PARAMETER temperature 0.8
LICENSE """Gemma is provided under and subject to the Gemma Terms of Use found at ai.google.dev/gemma/terms (a copy ships as models/GEMMA_TERMS.html)."""
'''


def test_the_shipped_modelfile_is_the_rendered_one(capsys, monkeypatch):
    monkeypatch.chdir(ROOT)

    code, out, err = polaris(
        capsys, "serve", "modelfile", "models/gemma-3-270m-q4_k_m.gguf",
        "--persona", "team-lead", "--adapter", "models/critics-lora.gguf", "--family", "gemma3",
    )

    assert code == 0, err
    assert out == SHIPPED
    assert (ROOT / "Modelfile").read_text(encoding="utf-8") == SHIPPED
    # its SYSTEM is the one-line prompt the critics adapter was trained with
    assert load_personas()["team-lead"].short_prompt() in out


def small_persona(**changes) -> Persona:
    card = {
        "id": "tester", "name": "검토자", "role": "꼼꼼한 검토자입니다.", "stance": "근거를 봅니다.",
        "register": "존댓말", "system_prompt": "당신은 검토자입니다.\n짧게 말합니다.",
        "examples": [{"user": f"질문 {i}", "assistant": f"답 {i}"} for i in range(1, 6)],
        "greeting": "안녕하세요.", "concession": "숫자를 보면 인정합니다.",
    }
    return Persona.model_validate({**card, **changes})


def test_chatml_modelfile_with_full_prompt_and_few_shot_messages():
    spec = persona_spec("./qwen.gguf", small_persona(), "chatml", prompt="full", examples=2,
                        num_ctx=8192, temperature=0.3)

    assert spec.render() == '''FROM ./qwen.gguf
TEMPLATE """{{- range .Messages }}<|im_start|>{{ .Role }}
{{ .Content }}<|im_end|>
{{ end }}<|im_start|>assistant
"""
SYSTEM """당신은 검토자입니다.
짧게 말합니다."""
PARAMETER stop "<|im_end|>"
PARAMETER stop "<|endoftext|>"
PARAMETER num_ctx 8192
PARAMETER temperature 0.3
MESSAGE user """질문 1"""
MESSAGE assistant """답 1"""
MESSAGE user """질문 2"""
MESSAGE assistant """답 2"""
'''


def test_llama3_modelfile_with_short_prompt_and_a_licence():
    spec = persona_spec("/models/llama.gguf", small_persona(), "llama3", license="Llama terms")

    assert spec.render(comment="line one\nline two") == '''# line one
# line two
FROM /models/llama.gguf
TEMPLATE """{{- range .Messages }}<|start_header_id|>{{ .Role }}<|end_header_id|>

{{ .Content }}<|eot_id|>
{{- end }}<|start_header_id|>assistant<|end_header_id|>

"""
SYSTEM """당신은 검토자입니다. 꼼꼼한 검토자입니다."""
PARAMETER stop "<|eot_id|>"
PARAMETER stop "<|end_of_text|>"
PARAMETER num_ctx 4096
PARAMETER temperature 0.8
LICENSE """Llama terms"""
'''


def test_mistral_modelfile():
    spec = persona_spec("./mistral.gguf", small_persona(), "mistral")

    assert spec.render() == '''FROM ./mistral.gguf
TEMPLATE """{{- $lastUser := -1 }}
{{- range $i, $m := .Messages }}{{ if eq $m.Role "user" }}{{ $lastUser = $i }}{{ end }}{{ end }}
{{- range $i, $m := .Messages }}
{{- if eq $m.Role "user" }}[INST] {{ if and (eq $i $lastUser) $.System }}{{ $.System }}

{{ end }}{{ $m.Content }} [/INST]
{{- else if eq $m.Role "assistant" }} {{ $m.Content }}</s>
{{- end }}
{{- end }}"""
SYSTEM """당신은 검토자입니다. 꼼꼼한 검토자입니다."""
PARAMETER stop "</s>"
PARAMETER num_ctx 4096
PARAMETER temperature 0.8
'''


def test_gemma_models_carry_the_gemma_notice_and_parameters_match_the_api():
    spec = persona_spec("./g.gguf", small_persona(), "gemma3")

    assert spec.license == GEMMA_NOTICE
    assert spec.parameters == {"stop": ["<end_of_turn>", "<eos>"], "num_ctx": 4096,
                               "temperature": 0.8}


# -- text a Modelfile cannot carry ---------------------------------------------------------------

@pytest.mark.parametrize(("text", "message"), [
    ('말하자면 """이렇게"""', 'contains """'),
    ("벨 소리\x07", "U+0007"),
    ("줄\r바꿈", "U+000D"),
    ("보이지\u200b않는", "U+200B (ZERO WIDTH SPACE)"),
    ("넓은\u00a0공백", "U+00A0 (NO-BREAK SPACE)"),
    ("가" * 20_001, "20,001 characters"),
])
def test_text_that_would_break_the_modelfile_is_refused(text, message):
    with pytest.raises(ModelfileError, match=re.escape(message)):
        check_text("SYSTEM", text)


def test_ordinary_korean_text_tabs_and_quotes_pass_unchanged():
    text = '그래서 숫자로 보면요?\n\t"근거"는요? — 100%, (리스크) ~ [기간] 😀'
    assert check_text("SYSTEM", text) == text


def test_spec_refuses_bad_message_roles_and_paths():
    with pytest.raises(ModelfileError, match="role 'tool'"):
        ModelSpec("./m.gguf", get_template("gemma3"),
                  messages=({"role": "tool", "content": "x"},))  # type: ignore[arg-type]
    with pytest.raises(ModelfileError, match="FROM"):
        ModelSpec('./my "model".gguf', get_template("gemma3"))
    with pytest.raises(ModelfileError, match="MESSAGE 1"):
        persona_spec("./m.gguf", small_persona(examples=[
            {"user": 'a """ b', "assistant": "c"}, *[{"user": "u", "assistant": "a"}] * 4,
        ]), "gemma3", examples=1)


def test_cli_refuses_a_persona_whose_prompt_breaks_the_modelfile(capsys, tmp_path, monkeypatch):
    cards = tmp_path / "cards"
    cards.mkdir()
    card = small_persona(system_prompt='끝 """ 이후').model_dump(exclude_none=True)
    (cards / "tester.yaml").write_text(yaml.safe_dump(card, allow_unicode=True), "utf-8")
    monkeypatch.setenv("POLARIS_PERSONAS_DIR", str(cards))

    code, out, err = polaris(capsys, "serve", "modelfile", "x.gguf", "--persona", "tester",
                             "--family", "gemma3", "--prompt", "full")

    assert code == 2 and out == ""
    assert err.count("\n") == 1 and 'SYSTEM contains """' in err


@pytest.mark.parametrize(("args", "message"), [
    (["missing.gguf", "--persona", "team-lead"], "does not exist"),
    (["x.gguf", "--persona", "nobody", "--family", "gemma3"], "unknown persona 'nobody'"),
    (["x.gguf", "--persona", "team-lead", "--family", "gpt"], "unknown chat template 'gpt'"),
    (["x.gguf", "--persona", "team-lead", "--family", "gemma3", "--prompt", "long"],
     "unknown prompt 'long'"),
])
def test_cli_bad_input_exits_2_with_one_line(capsys, args, message):
    code, out, err = polaris(capsys, "serve", "modelfile", *args)

    assert code == 2 and out == ""
    assert err.startswith("polaris: error: ") and message in err and err.count("\n") == 1


def test_family_is_read_from_the_real_gguf_and_out_paths_are_relative(capsys, model_path,
                                                                       tmp_path):
    out = tmp_path / "serve" / "Modelfile"
    out.parent.mkdir()

    code, _, err = polaris(capsys, "serve", "modelfile", model_path, "--persona", "team-lead",
                           "--examples", "1", "--out", out)

    assert code == 0, err
    text = out.read_text(encoding="utf-8")
    assert "<start_of_turn>" in text  # gemma3, detected from the file's metadata
    relative = Path(text.split("FROM ", 1)[1].split("\n", 1)[0])
    assert (out.parent / relative).resolve() == model_path.resolve()
    assert text.count("MESSAGE ") == 2
