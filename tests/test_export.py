"""GGUF export of a tiny trained run: merge → llama.cpp converter → q8_0 → verification report,
the Modelfile, a runtime GGUF LoRA, and the errors a user meets (converter missing, no token)."""

import json
import shutil
from pathlib import Path

import pytest

pytest.importorskip("trl")
llama_cpp = pytest.importorskip("llama_cpp")

import numpy as np
from jinja2.sandbox import ImmutableSandboxedEnvironment
from transformers import AutoTokenizer

from serving.embedded import EmbeddedBackend
from serving.errors import InvalidInput
from serving.templates import FAMILIES
from tests.cli import polaris
from tests.tiny import train_tiny_run
from training import converter, export, verify

CONVERSATIONS = [
    [{"role": "user", "content": "안녕"}],
    [{"role": "system", "content": "S1"}, {"role": "user", "content": "U"}],
    [{"role": "system", "content": "S1"}, {"role": "system", "content": "S2"},
     {"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"},
     {"role": "user", "content": "U2 🙂"}],
    [{"role": "system", "content": "S"}, {"role": "assistant", "content": "A"},
     {"role": "user", "content": "U"}],
    [{"role": "user", "content": "U1"}, {"role": "assistant", "content": "A1"}],
    [{"role": "system", "content": "S only"}],
]


@pytest.fixture(scope="module")
def trained(tmp_path_factory) -> Path:
    try:
        converter.find_llama_cpp()
    except converter.ConverterMissing as exc:
        pytest.fail(str(exc))
    return train_tiny_run(tmp_path_factory.mktemp("tiny"))


@pytest.fixture(scope="module")
def exported(trained) -> tuple[Path, dict]:
    out = trained.parent / "export"
    report = export.export_gguf(trained, out, ["q8_0"], name="tiny", require_stop=False,
                                smoke_max_tokens=32, threads=1)
    return out, report


def checks(report: dict, file: str) -> dict[str, dict]:
    return {c["name"]: c for c in report["checks"] if c["file"] == file}


def logits(model_path: Path, ids: list[int], lora: Path | None = None) -> np.ndarray:
    llm = llama_cpp.Llama(model_path=str(model_path), lora_path=str(lora) if lora else None,
                          n_ctx=256, logits_all=True, n_threads=1, verbose=False)
    llm.eval(ids)
    scores = np.array(llm.scores[: len(ids)])
    llm.close()
    return scores


@pytest.mark.parametrize("family", sorted(FAMILIES))
@pytest.mark.parametrize("messages", CONVERSATIONS)
def test_embedded_jinja_renders_exactly_our_template(family, messages):
    template = FAMILIES[family]
    jinja = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    for generation in (True, False):
        rendered = jinja.from_string(export.JINJA[family]).render(
            messages=messages, add_generation_prompt=generation)
        assert rendered == template.render_text(messages, add_generation_prompt=generation)


def test_export_writes_verified_files_and_no_temp_files(exported):
    out, report = exported
    assert report["passed"] is True
    assert sorted(p.name for p in out.iterdir()) == [
        "Modelfile", "report.json", "report.md", "tiny-f16.gguf", "tiny-q8_0.gguf"]
    assert json.loads((out / "report.json").read_text(encoding="utf-8")) == report
    f16, q8 = checks(report, "tiny-f16.gguf"), checks(report, "tiny-q8_0.gguf")
    for found in (f16, q8):
        assert found["token_parity"]["passed"] and not found["token_parity"]["detail"]["mismatches"]
        assert found["chat_template"]["passed"]
    assert f16["logits"]["gated"] and f16["logits"]["detail"]["relative"] < 1e-3
    assert f16["logits"]["detail"]["top1_agreement"] >= 0.9  # near-ties of a random model flip
    assert not q8["logits"]["gated"]  # quantized logits are reported, not gated
    smoke = q8["smoke_chat"]  # a random tiny model never stops: relaxed, and said so
    assert smoke["gated"] is False and smoke["detail"]["stopped"] is False
    assert smoke["detail"]["completion_tokens"] == 32
    assert "did not stop after 32 tokens" in (out / "report.md").read_text(encoding="utf-8")
    assert set(report["timings_s"]) == {"merge", "convert", "quantize", "verify"}


def test_modelfile_points_at_the_quantized_file_with_the_templates_stops(exported):
    text = (exported[0] / "Modelfile").read_text(encoding="utf-8")
    assert "FROM ./tiny-q8_0.gguf\n" in text
    assert 'PARAMETER stop "<end_of_turn>"\n' in text and 'PARAMETER stop "<eos>"\n' in text
    assert "PARAMETER num_ctx 512\n" in text  # capped at the model's context
    template = FAMILIES["gemma3"].ollama_template
    assert f'TEMPLATE """{template}"""\n' in text  # the Go template proven equal to ours


def test_gguf_carries_our_template_and_the_control_tokens(exported):
    llm = llama_cpp.Llama(model_path=str(exported[0] / "tiny-f16.gguf"), vocab_only=True,
                          verbose=False)
    assert llm.metadata["tokenizer.chat_template"] == export.JINJA["gemma3"]
    assert llm.tokenize(b"<end_of_turn>", add_bos=False, special=True) == [5]
    llm.close()


def test_runtime_lora_on_the_base_gguf_matches_the_merged_export(trained, exported, tmp_path):
    adapter = export.export_lora(trained, tmp_path / "adapter.gguf")
    assert adapter.is_file() and not list(tmp_path.glob(".*.tmp"))
    base = converter.convert_hf(trained.parent / "base", tmp_path / "base-f16.gguf")
    tokenizer = AutoTokenizer.from_pretrained(trained / "adapter")
    ids = verify.hf_prompt_ids(tokenizer, FAMILIES["gemma3"], verify.SMOKE_MESSAGES)
    merged = logits(exported[0] / "tiny-f16.gguf", ids)
    with_lora = logits(base, ids, lora=adapter)
    plain = logits(base, ids)
    scale = np.abs(merged).max()
    assert np.abs(with_lora - merged).max() / scale < 1e-2
    assert np.abs(plain - merged).max() / scale > 1e-2  # the adapter did change the model
    # the embedded backend wires POLARIS_LORA_PATH through to llama.cpp the same way
    embedded = EmbeddedBackend(base, lora_path=adapter, template="gemma3", n_ctx=256,
                               n_threads=1).load().llm
    embedded.reset()
    embedded.eval(ids)
    # without logits_all, llama-cpp-python keeps only the context's last logits row
    last = np.ctypeslib.as_array(embedded._ctx.get_logits(), shape=(embedded.n_vocab(),))
    assert np.abs(last - with_lora[-1]).max() / scale < 1e-3


def fake_base_gguf(path: Path, tokens: int) -> Path:
    """A GGUF holding only a SentencePiece vocabulary, as a base model's would."""
    import gguf

    writer = gguf.GGUFWriter(path, "llama")
    writer.add_tokenizer_model("llama")
    writer.add_token_list([f"piece{i}" for i in range(tokens)])
    writer.add_token_scores([-float(i) for i in range(tokens)])
    writer.add_token_types([1] * tokens)
    writer.add_bos_token_id(7)
    writer.write_header_to_file()
    writer.write_kv_data_to_file()
    writer.write_ti_data_to_file()
    writer.close()
    return path


def test_vocab_copy_takes_the_base_vocab_and_keeps_everything_else(exported, tmp_path):
    import gguf

    src = exported[0] / "tiny-f16.gguf"
    export.copy_vocab(src, fake_base_gguf(tmp_path / "base.gguf", 1000), tmp_path / "copy.gguf")
    before, after = gguf.GGUFReader(src), gguf.GGUFReader(tmp_path / "copy.gguf")
    assert after.fields["tokenizer.ggml.tokens"].contents()[:2] == ["piece0", "piece1"]
    assert after.fields["tokenizer.ggml.scores"].contents()[1] == -1.0
    assert after.fields["tokenizer.ggml.bos_token_id"].contents() == 7
    assert "tokenizer.ggml.eos_token_id" not in after.fields  # none of the export's own
    assert after.fields["tokenizer.chat_template"].contents() == export.JINJA["gemma3"]
    assert after.fields["llama.block_count"].contents() == 2
    assert [t.name for t in after.tensors] == [t.name for t in before.tensors]
    assert all(np.array_equal(a.data, b.data) for a, b in zip(before.tensors, after.tensors,
                                                              strict=True))
    with pytest.raises(export.ExportFailed, match="vocabulary size"):
        export.copy_vocab(src, fake_base_gguf(tmp_path / "other.gguf", 999), tmp_path / "x.gguf")


def test_missing_converter_names_make_converter(trained, tmp_path, monkeypatch, capsys):
    monkeypatch.setenv(converter.ENV, str(tmp_path / "nowhere"))
    with pytest.raises(converter.ConverterMissing, match="make converter"):
        converter.find_llama_cpp()
    code, _, err = polaris(capsys, "export", "gguf", str(trained), "--out",
                            str(tmp_path / "out"))
    assert code == 1 and "make converter" in err
    assert not (tmp_path / "out").exists()  # failed before any work


def test_a_broken_converter_fails_with_its_own_message(tmp_path, monkeypatch):
    folder = tmp_path / "llama.cpp"
    (folder / "gguf-py" / "gguf").mkdir(parents=True)
    (folder / "gguf-py" / "gguf" / "__init__.py").write_text("")
    (folder / "convert_lora_to_gguf.py").write_text("")
    (folder / "convert_hf_to_gguf.py").write_text("raise SystemExit('corrupted converter')\n")
    monkeypatch.setenv(converter.ENV, str(folder))
    with pytest.raises(converter.ConversionFailed, match="corrupted converter"):
        converter.convert_hf(tmp_path, tmp_path / "x.gguf")


def test_push_to_hub_without_a_token_says_to_set_hf_token(trained, tmp_path, monkeypatch,
                                                          capsys):
    monkeypatch.delenv("HF_TOKEN", raising=False)
    monkeypatch.setenv("HF_HOME", str(tmp_path / "hf"))  # no stored login either
    code, _, err = polaris(capsys, "export", "gguf", str(trained), "--out",
                            str(tmp_path / "out"), "--push-to-hub", "someone/tiny")
    assert code == 2 and "set HF_TOKEN" in err
    assert not (tmp_path / "out").exists()


def test_push_uploads_the_folder_with_a_card_and_never_shows_the_token(exported, tmp_path,
                                                                        monkeypatch):
    import huggingface_hub

    calls = []

    class FakeApi:
        def __init__(self, token):
            calls.append(("token", token))

        def create_repo(self, repo, **kwargs):
            calls.append(("create", repo))
            return f"https://huggingface.co/{repo}"

        def upload_folder(self, **kwargs):
            calls.append(("upload", kwargs["repo_id"], kwargs["folder_path"]))
            raise RuntimeError("403 Forbidden")

    monkeypatch.setattr(huggingface_hub, "HfApi", FakeApi)
    out, report = shutil.copytree(exported[0], tmp_path / "out"), exported[1]
    with pytest.raises(export.PolarisError) as failed:
        export.push_to_hub(out, "someone/tiny", "hf_secret_value", report)
    assert "403 Forbidden" in str(failed.value) and "hf_secret" not in str(failed.value)
    assert calls == [("token", "hf_secret_value"), ("create", "someone/tiny"),
                     ("upload", "someone/tiny", out)]
    card = (out / "README.md").read_text(encoding="utf-8")
    assert "tiny-q8_0.gguf" in card and "gemma3" in card


def test_bad_input_is_rejected_before_any_work(trained, tmp_path):
    with pytest.raises(InvalidInput, match="q4_k_m"):
        export.parse_quants("q8_0,q3_xs")
    with pytest.raises(InvalidInput, match="not a training run"):
        export.read_run(tmp_path)


def test_report_fails_loudly_when_a_gated_check_fails(tmp_path):
    failing = [verify.Check("m.gguf", "token_parity", False, {"strings": 11, "mismatches": [{}]}),
               verify.Check("m.gguf", "smoke_chat", False, {"stopped": False, "completion_tokens":
                            8, "max_tokens": 8}, gated=False)]
    verify.write_report(tmp_path, {"run_dir": "r", "template": "gemma3",
                                   "timings_s": {"merge": 1.0}}, failing)
    report = json.loads((tmp_path / "report.json").read_text(encoding="utf-8"))
    assert report["passed"] is False and [c.name for c in verify.failures(failing)] == [
        "token_parity"]
    assert "| m.gguf | token_parity | FAIL | 10/11 strings identical |" in \
        (tmp_path / "report.md").read_text(encoding="utf-8")



@pytest.mark.slow
@pytest.mark.model
def test_gemma_export_copies_the_base_vocab_and_matches_hf(model_path, tmp_path, monkeypatch):
    """One LoRA step on the real Gemma 3 270M, then the full export (~2 min on 2 cores)."""
    from training.config import load_config
    from training.sft import train_sft

    root = Path(__file__).resolve().parents[1]
    monkeypatch.chdir(root)  # the recipe's paths (and the cached base) are relative to the repo
    train_sft(load_config(root / "training" / "configs" / "cpu-demo.yaml", [
        "max_steps=1", "grad_accum=1", f"output_dir={tmp_path / 'run'}", "save_steps=1000",
        "data=[training/data/critics/team-lead.train.jsonl]"]))
    report = export.export_gguf(tmp_path / "run", tmp_path / "out", ["q8_0", "q4_k_m"],
                                require_stop=False, smoke_max_tokens=32)
    assert report["passed"] and report["base_gguf"]
    for file in ("run-f16.gguf", "run-q8_0.gguf", "run-q4_k_m.gguf"):
        assert checks(report, file)["token_parity"]["passed"]
    assert checks(report, "run-f16.gguf")["logits"]["detail"]["relative"] < 1e-2
    llm = llama_cpp.Llama(model_path=str(tmp_path / "out" / "run-f16.gguf"), vocab_only=True,
                          verbose=False)
    assert llm.metadata["tokenizer.ggml.model"] == "llama"  # the base's SentencePiece vocab
    llm.close()
