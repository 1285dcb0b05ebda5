"""SFT and DPO on a tiny Llama (2 layers, hidden 32) with a BPE tokenizer trained here, and the
`polaris train` command. The real Gemma 3 270M step is marked slow."""

import csv
import json
import math
from pathlib import Path

import pytest

pytest.importorskip("trl")

import torch
from safetensors.torch import load_file

from serving.persona import Example, Persona, save_persona
from serving.templates import get_template
from training.config import load_config

SPECIALS = ["<pad>", "<eos>", "<bos>", "<unk>", "<start_of_turn>", "<end_of_turn>"]
CORPUS = ["안녕하세요 팀장님, 저 퇴사하고 창업하려고요.", "그건 아직 이릅니다. 모아 둔 돈은 얼마나 있나요?",
          "I want to quit and start a company.", "user model system 너는 팀장이다."]
CHATS = [
    [{"role": "system", "content": "너는 팀장이다."},
     {"role": "user", "content": "저 퇴사하고 창업하려고요."},
     {"role": "assistant", "content": "모아 둔 돈은 얼마나 있나요?"}],
    [{"role": "user", "content": "I want to quit."},
     {"role": "assistant", "content": "그건 아직 이릅니다."},
     {"role": "user", "content": "왜요?"},
     {"role": "assistant", "content": "계획이 없잖아요."}],
]
PAIRS = [{"prompt": "저 창업하려고요.", "chosen": "돈은 얼마나 있나요?", "rejected": "멋져요!"},
         {"prompt": "I quit today.", "chosen": "계획은 있나요?", "rejected": "Great!"}]


def build_tiny_model(folder: Path) -> None:
    """A random tiny Llama and a byte-level BPE tokenizer that, like Gemma's, adds <bos>."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, processors, trainers
    from transformers import LlamaConfig, LlamaForCausalLM, PreTrainedTokenizerFast

    tok = Tokenizer(models.BPE(unk_token="<unk>"))
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    tok.train_from_iterator(CORPUS * 3, trainers.BpeTrainer(
        vocab_size=400, special_tokens=SPECIALS,
        initial_alphabet=pre_tokenizers.ByteLevel.alphabet()))
    tok.post_processor = processors.TemplateProcessing(
        single="<bos> $A", special_tokens=[("<bos>", tok.token_to_id("<bos>"))])
    tokenizer = PreTrainedTokenizerFast(
        tokenizer_object=tok, bos_token="<bos>", eos_token="<eos>", pad_token="<pad>",
        unk_token="<unk>", additional_special_tokens=["<start_of_turn>", "<end_of_turn>"])
    torch.manual_seed(0)
    config = LlamaConfig(
        vocab_size=len(tokenizer), hidden_size=32, intermediate_size=64, num_hidden_layers=2,
        num_attention_heads=4, num_key_value_heads=2, max_position_embeddings=512,
        bos_token_id=tokenizer.bos_token_id, eos_token_id=tokenizer.eos_token_id,
        pad_token_id=tokenizer.pad_token_id)
    LlamaForCausalLM(config).save_pretrained(folder)
    tokenizer.save_pretrained(folder)


def write_jsonl(path: Path, rows: list) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("".join(json.dumps(r, ensure_ascii=False) + "\n" for r in rows),
                    encoding="utf-8")
    return path


@pytest.fixture(scope="module")
def workspace(tmp_path_factory) -> Path:
    """Tiny base model, chat and preference data, a persona card and two configs."""
    root = tmp_path_factory.mktemp("training")
    build_tiny_model(root / "base")
    write_jsonl(root / "chats.jsonl", [{"messages": m} for m in CHATS] * 4)
    write_jsonl(root / "prefs" / "tester.jsonl", PAIRS)  # matches the card below
    write_jsonl(root / "prefs" / "nobody.jsonl", PAIRS[:1])  # no card: no system prompt
    save_persona(Persona(
        id="tester", name="테스터", role="검증 담당", stance="반대", register="존댓말",
        system_prompt="너는 팀장이다.", greeting="네.", concession="일부는 인정합니다.",
        examples=[Example(user=f"질문 {i}", assistant=f"답 {i}") for i in range(5)]),
        root / "cards")
    common = (f"base_model: {root / 'base'}\ntemplate: gemma3\nmax_length: 128\n"
              f"batch_size: 2\ngrad_accum: 1\nlogging_steps: 1\nsave_steps: 2\n"
              f"learning_rate: 0.01\nwarmup_ratio: 0\n"
              f"lora: {{r: 4, alpha: 8}}\n")
    (root / "sft.yaml").write_text(
        common + f"data: [{root / 'chats.jsonl'}]\noutput_dir: {root / 'sft'}\nmax_steps: 2\n",
        encoding="utf-8")
    (root / "dpo.yaml").write_text(
        common + f"kind: dpo\ndata: [{root / 'prefs/tester.jsonl'}, {root / 'prefs/nobody.jsonl'}]"
        f"\npersonas_dir: {root / 'cards'}\ninit_adapter: {root / 'sft'}\n"
        f"output_dir: {root / 'dpo'}\nmax_steps: 2\n", encoding="utf-8")
    return root


@pytest.fixture(scope="module")
def sft_run(workspace) -> Path:
    from training.sft import train_sft

    return train_sft(load_config(workspace / "sft.yaml"))


def test_sft_trains_lora_only_and_writes_the_run(workspace, sft_run):
    base = load_file(workspace / "base" / "model.safetensors")
    adapter = load_file(sft_run / "adapter_model.safetensors")
    assert adapter and all("lora_" in name for name in adapter)
    changed = [n for n, t in adapter.items() if "lora_B" in n and t.abs().sum() > 0]
    assert changed, "lora_B starts at zero; training must move it"
    from peft import PeftModel
    from transformers import AutoModelForCausalLM

    model = PeftModel.from_pretrained(AutoModelForCausalLM.from_pretrained(workspace / "base"),
                                      sft_run)
    for name, tensor in model.get_base_model().state_dict().items():
        plain = name.replace(".base_layer", "")
        if "lora_" not in name and plain in base:
            assert torch.equal(tensor, base[plain]), name
    rows = list(csv.DictReader((workspace / "sft" / "history.csv").open(encoding="utf-8")))
    assert [int(r["step"]) for r in rows] == [1, 2] and all(float(r["loss"]) > 0 for r in rows)
    run = json.loads((workspace / "sft" / "run.json").read_text(encoding="utf-8"))
    assert (run["examples"], run["dropped_too_long"], run["steps"]) == (8, 0, 2)
    assert (workspace / "sft" / "loss.png").is_file()


def test_preference_pairs_are_tokenized_like_the_embedded_backend(workspace):
    from transformers import AutoTokenizer

    from training.dpo import encode_preferences

    tok = AutoTokenizer.from_pretrained(workspace / "base")
    config = load_config(workspace / "dpo.yaml")
    pairs, dropped = encode_preferences(tok, get_template("gemma3"), config)
    assert (len(pairs), dropped) == (3, 0)

    def text(s):
        return tok(s, add_special_tokens=False)["input_ids"]

    bos, start, end = (tok.convert_tokens_to_ids(t)
                       for t in ("<bos>", "<start_of_turn>", "<end_of_turn>"))
    first = pairs[0]  # tester.jsonl: the card's system prompt is folded into the user turn
    assert first["prompt_ids"] == [bos, start, *text("user\n"),
                                   *text("너는 팀장이다.\n\n저 창업하려고요."), end,
                                   *text("\n"), start, *text("model\n")]
    assert first["chosen_ids"] == [*text("돈은 얼마나 있나요?"), end]
    assert first["rejected_ids"] == [*text("멋져요!"), end]
    last = pairs[-1]  # nobody.jsonl: no card, no system prompt
    assert last["prompt_ids"][:4] == [bos, start, *text("user\n"), *text("저 창업하려고요.")][:4]
    assert "팀장" not in tok.decode(last["prompt_ids"])
    for pair in pairs:
        full = pair["prompt_ids"] + pair["chosen_ids"]
        assert full.count(bos) == 1 and full[0] == bos


def test_short_system_prompt_swaps_each_card_prompt_for_its_one_line(workspace):
    from training.sft import load_records

    config = load_config(workspace / "sft.yaml",
                         [f"personas_dir={workspace / 'cards'}", "system_prompt=short"])
    records = load_records(config)
    assert records[0].messages[0].content == "당신은 테스터입니다. 검증 담당"
    assert [m.content for m in records[0].messages[1:]] == [m["content"] for m in CHATS[0][1:]]
    assert records[1].messages[0].role == "user"  # no system prompt: nothing to swap
    card = load_config(workspace / "sft.yaml", [f"personas_dir={workspace / 'cards'}"])
    assert load_records(card)[0].messages[0].content == "너는 팀장이다."


def test_short_system_prompt_names_the_line_of_an_unknown_prompt(workspace, tmp_path):
    from training.formats import DataError
    from training.sft import load_records

    data = write_jsonl(tmp_path / "odd.jsonl", [
        {"messages": CHATS[1]},
        {"messages": [{"role": "system", "content": "너는 누구냐"}, *CHATS[0][1:]]}])
    config = load_config(workspace / "sft.yaml", [
        f"data=[{data}]", f"personas_dir={workspace / 'cards'}", "system_prompt=short"])
    with pytest.raises(DataError, match=r"odd.jsonl:2: field 'messages\[0\].content'"):
        load_records(config)


@pytest.fixture(scope="module")
def dpo_run(workspace, sft_run) -> Path:
    from training.dpo import build_trainer
    from training.sft import run_and_save

    config = load_config(workspace / "dpo.yaml")
    trainer, tokenizer, folder, family, used, dropped = build_trainer(config)
    workspace.joinpath("dpo-first-row.json").write_text(json.dumps(
        {k: trainer.train_dataset[0][k] for k in ("prompt_ids", "chosen_ids", "rejected_ids")}))
    return run_and_save(trainer, tokenizer, config, folder, family, used, dropped)


def test_dpo_continues_the_sft_adapter_and_trains_on_our_ids(workspace, sft_run, dpo_run):
    from transformers import AutoTokenizer

    from training.dpo import encode_preferences

    tok = AutoTokenizer.from_pretrained(workspace / "base")
    pairs, _ = encode_preferences(tok, get_template("gemma3"),
                                  load_config(workspace / "dpo.yaml"))
    seen = json.loads((workspace / "dpo-first-row.json").read_text())
    assert seen == pairs[0]  # TRL kept our token ids (no second BOS, no eos appended)
    assert not (dpo_run / "ref").exists()  # only the trained adapter, not TRL's reference copy
    before = load_file(sft_run / "adapter_model.safetensors")
    after = load_file(dpo_run / "adapter_model.safetensors")
    assert before.keys() == after.keys()
    assert any(not torch.equal(before[k], after[k]) for k in before)
    run = json.loads((workspace / "dpo" / "run.json").read_text(encoding="utf-8"))
    assert (run["examples"], run["steps"], run["config"]["beta"]) == (3, 2, 0.1)
    rows = list(csv.DictReader((workspace / "dpo" / "history.csv").open(encoding="utf-8")))
    # the reference is the SFT adapter (TRL's frozen "ref" copy), so the policy equals it at
    # step 1 and the loss is exactly log 2; against the bare base it would be ~0.687 here
    assert float(rows[0]["loss"]) == pytest.approx(math.log(2), abs=1e-6)
    # TRL's reward metrics go to the CSV too; at step 1 the margin is exactly zero
    assert float(rows[0]["rewards/margins"]) == pytest.approx(0.0, abs=1e-6)
    assert {"rewards/chosen", "rewards/rejected", "rewards/accuracies"} <= set(rows[0])


def test_a_second_run_resumes_from_the_newest_checkpoint(workspace, dpo_run):
    from training.dpo import train_dpo

    assert (workspace / "dpo" / "checkpoint-2").is_dir()
    train_dpo(load_config(workspace / "dpo.yaml", ["max_steps=3"]))
    run = json.loads((workspace / "dpo" / "run.json").read_text(encoding="utf-8"))
    assert run["steps"] == 3
    steps = [int(r["step"]) for r in
             csv.DictReader((workspace / "dpo" / "history.csv").open(encoding="utf-8"))]
    assert steps == [1, 2, 3]  # step 3 only: it did not start over


def test_dpo_from_the_base_model_adds_a_new_lora(workspace, tmp_path):
    from training.dpo import train_dpo

    adapter = train_dpo(load_config(workspace / "dpo.yaml", [
        "init_adapter=null", "max_steps=1", f"output_dir={tmp_path / 'run'}"]))
    config = json.loads((adapter / "adapter_config.json").read_text(encoding="utf-8"))
    assert config["r"] == 4 and (adapter / "adapter_model.safetensors").is_file()


def test_polaris_train_sft_command(workspace, tmp_path, capsys):
    from chatbot.cli import main

    out = tmp_path / "cli-run"
    assert main(["train", "sft", "--config", str(workspace / "sft.yaml"), "max_steps=1",
                 f"output_dir={out}"]) == 0
    printed = capsys.readouterr().out
    assert str(out / "adapter") in printed and "8 examples used, 0 dropped" in printed
    assert (out / "adapter" / "adapter_model.safetensors").is_file()


@pytest.mark.parametrize("args", [
    ["sft", "--config", "{ws}/sft.yaml", "max_steps=lots"],
    ["sft", "--config", "{ws}/sft.yaml", "max_steps"],
    ["sft", "--config", "{ws}/missing.yaml"],
    ["sft", "--config", "{ws}/dpo.yaml"],
])
def test_bad_configs_exit_2_with_one_line(workspace, capsys, args):
    from chatbot.cli import main

    with pytest.raises(SystemExit) as exit_info:
        main(["train", *(a.format(ws=workspace) for a in args)])
    assert exit_info.value.code == 2
    err = capsys.readouterr().err
    assert err.startswith("polaris: error: ") and err.count("\n") == 1


def test_runs_as_a_module_for_accelerate_launch(workspace):
    import subprocess
    import sys

    done = subprocess.run(
        [sys.executable, "-m", "training.train_cli", "dpo", "--config",
         str(workspace / "sft.yaml"), "lora.r=0"],
        check=False, capture_output=True, text=True, cwd=Path(__file__).parents[1])
    assert done.returncode == 2
    assert done.stderr.startswith("polaris train: error: ") and "lora.r" in done.stderr


@pytest.mark.slow
@pytest.mark.model
def test_one_real_sft_step_on_gemma(model_path, tmp_path, monkeypatch):
    """One LoRA step of the CPU demo recipe on Gemma 3 270M (~40 s; the first run also
    dequantizes the GGUF into the checkout's .cache, ~60 s)."""
    from training import base
    from training.corpus import train_path
    from training.sft import train_sft

    root = Path(__file__).parents[1]
    monkeypatch.setattr(base, "CACHE", root / ".cache" / "base")
    config = load_config(root / "training" / "configs" / "cpu-demo.yaml", [
        f"base_model={model_path}", f"data=[{train_path('team-lead')}]",
        f"output_dir={tmp_path / 'run'}", "max_steps=1", "grad_accum=1"])
    adapter = train_sft(config)
    assert (adapter / "adapter_model.safetensors").is_file()
    run = json.loads((tmp_path / "run" / "run.json").read_text(encoding="utf-8"))
    assert run["steps"] == 1 and run["template"] == "gemma3"

