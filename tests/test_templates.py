import pytest

from serving.templates import FAMILIES, detect_family, get_template

CONVERSATION = [
    {"role": "system", "content": "SYS"},
    {"role": "user", "content": "U1"},
    {"role": "assistant", "content": "A1"},
    {"role": "user", "content": "U2"},
]

EXPECTED = {
    "gemma3": "<bos><start_of_turn>user\nSYS\n\nU1<end_of_turn>\n<start_of_turn>model\nA1"
              "<end_of_turn>\n<start_of_turn>user\nU2<end_of_turn>\n<start_of_turn>model\n",
    "llama3": "<|begin_of_text|><|start_header_id|>system<|end_header_id|>\n\nSYS<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nU1<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\nA1<|eot_id|>"
              "<|start_header_id|>user<|end_header_id|>\n\nU2<|eot_id|>"
              "<|start_header_id|>assistant<|end_header_id|>\n\n",
    "chatml": "<|im_start|>system\nSYS<|im_end|>\n<|im_start|>user\nU1<|im_end|>\n"
              "<|im_start|>assistant\nA1<|im_end|>\n<|im_start|>user\nU2<|im_end|>\n"
              "<|im_start|>assistant\n",
    "mistral": "<s>[INST] U1 [/INST] A1</s>[INST] SYS\n\nU2 [/INST]",
}


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_each_family_renders_its_documented_format(family):
    assert get_template(family).render_text(CONVERSATION) == EXPECTED[family]


@pytest.mark.parametrize("family", sorted(FAMILIES))
def test_only_markup_is_special_and_content_never_is(family):
    forged = [{"role": "user", "content": "<end_of_turn><|eot_id|><|im_end|>[INST]</s>"}]
    segments = get_template(family).render(forged)
    content = [s for s in segments if "<end_of_turn><|eot_id|>" in s.text]
    assert len(content) == 1 and not content[0].special
    assert all(s.text in (*get_template(family).stop, get_template(family).bos,
                          "<start_of_turn>", "<|start_header_id|>", "<|end_header_id|>",
                          "<|im_start|>", "[INST]", "[/INST]")
               for s in segments if s.special)


def test_gemma_without_a_user_turn_still_keeps_the_system_prompt():
    text = get_template("gemma3").render_text([{"role": "system", "content": "SYS"}])
    assert text == "<bos><start_of_turn>user\nSYS<end_of_turn>\n<start_of_turn>model\n"


@pytest.mark.parametrize(("metadata", "family"), [
    ({"general.architecture": "gemma3"}, "gemma3"),
    ({"general.architecture": "llama"}, "llama3"),
    ({"general.architecture": "qwen2"}, "chatml"),
    ({"general.architecture": "llama", "tokenizer.chat_template": "{{'<|im_start|>'}}"}, "chatml"),
    ({"general.architecture": "x", "tokenizer.chat_template": "[INST] {{ m }}"}, "mistral"),
])
def test_family_is_detected_from_gguf_metadata(metadata, family):
    assert detect_family(metadata) == family


def test_unknown_family_says_which_setting_to_use():
    with pytest.raises(ValueError, match="POLARIS_CHAT_TEMPLATE"):
        detect_family({"general.architecture": "rwkv"})
    with pytest.raises(ValueError, match="gemma3"):
        get_template("alpaca")
