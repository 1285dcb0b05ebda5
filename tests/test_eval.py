"""`polaris eval persona` on a tiny Llama: perplexity equals a brute-force computation from
llama.cpp's logits, a perturbed LoRA changes it, the report has every section, bad paths exit 2."""

import json
import math
from pathlib import Path

import pytest

pytest.importorskip("peft")
llama_cpp = pytest.importorskip("llama_cpp")

from chatbot.cli import main
from serving.persona import Example, load_personas, save_persona
from serving.templates import FAMILIES
from tests.tiny import build_tiny_llama
from training import converter, evaluate

PID = "retired-developer"
CONVERSATIONS = [
    [{"role": "user", "content": "회사 그만둘래"}, {"role": "assistant", "content": "기본부터 해."},
     {"role": "user", "content": "왜?"}, {"role": "assistant", "content": "검색은 해봤냐?"}],
    [{"role": "user", "content": "창업할 거야"}, {"role": "assistant", "content": "쯧, 아직 아니야."}],
]


@pytest.fixture(scope="module")
def tiny(tmp_path_factory) -> dict[str, Path]:
    """A tiny base GGUF, a GGUF LoRA with random (non-zero) weights, a short card and held-out
    file (the tiny model's context is 512 tokens)."""
    import torch
    from peft import LoraConfig, get_peft_model
    from transformers import LlamaForCausalLM

    root = tmp_path_factory.mktemp("eval")
    base_dir = build_tiny_llama(root / "base")
    base = converter.convert_hf(base_dir, root / "base-f16.gguf")
    torch.manual_seed(1)
    peft_model = get_peft_model(
        LlamaForCausalLM.from_pretrained(base_dir),
        LoraConfig(r=4, lora_alpha=8, target_modules=["q_proj", "v_proj", "o_proj"],
                   init_lora_weights=False))  # B is random, so the adapter moves the model
    peft_model.save_pretrained(root / "adapter")
    lora = converter.convert_lora(root / "adapter", base_dir, root / "adapter.gguf")
    card = load_personas()[PID].model_copy(update={
        "system_prompt": "넌 은퇴한 개발자야. 반말로 말해.",
        "examples": [Example(user="안녕", assistant="기본부터.")] * 5})
    save_persona(card, root / "personas")
    (root / "heldout").mkdir()
    (root / "heldout" / f"{PID}.heldout.jsonl").write_text("".join(
        json.dumps({"id": f"t{i}", "messages": m}, ensure_ascii=False) + "\n"
        for i, m in enumerate(CONVERSATIONS)), encoding="utf-8")
    return {"root": root, "base": base, "lora": lora}


def _llm(path: Path, lora: Path | None = None):
    return llama_cpp.Llama(model_path=str(path), lora_path=str(lora) if lora else None,
                           n_ctx=256, logits_all=True, n_threads=1, verbose=False)


def test_reply_positions_are_the_reply_and_its_end_of_turn(tiny):
    llm = _llm(tiny["base"])
    template = FAMILIES["gemma3"]
    ids, turns = evaluate.scored_tokens(llm, template, CONVERSATIONS[0])
    end = llm.tokenize(b"<end_of_turn>", add_bos=False, special=True)
    assert len(turns) == 2
    for positions, reply in zip(turns, ("기본부터 해.", "검색은 해봤냐?"), strict=True):
        assert [ids[p] for p in positions] == llm.tokenize(
            reply.encode(), add_bos=False, special=False) + end
    llm.close()


def test_perplexity_equals_brute_force_from_llama_cpp_logits(tiny):
    llm = _llm(tiny["base"])
    ids, turns = evaluate.scored_tokens(llm, FAMILIES["gemma3"], CONVERSATIONS[1])
    ours = evaluate.turn_nlls(llm, ids, turns)
    llm.close()

    fresh = _llm(tiny["base"])
    fresh.eval(ids)
    brute = []
    for positions in turns:
        nll = 0.0
        for p in positions:
            row = [float(x) for x in fresh.scores[p - 1]]
            nll += math.log(sum(math.exp(x) for x in row)) - row[ids[p]]
        brute.append(nll / len(positions))
    fresh.close()
    assert ours == pytest.approx(brute, abs=1e-4)


def test_heldout_conversations_start_with_the_chosen_system_prompt(tiny):
    card = load_personas(tiny["root"] / "personas")[PID]
    path = tiny["root"] / "heldout" / f"{PID}.heldout.jsonl"
    short = evaluate.heldout_conversations(card, path)
    full = evaluate.heldout_conversations(card, path, prompt="card")
    assert short[0][0] == {"role": "system", "content": card.short_prompt()}
    assert full[0][0] == {"role": "system", "content": "넌 은퇴한 개발자야. 반말로 말해."}
    assert short[0][1:] == full[0][1:] == CONVERSATIONS[0]


def _config(tiny, **kw) -> evaluate.EvalConfig:
    return evaluate.EvalConfig(**{
        "model": tiny["base"], "personas": [PID], "limit": 1, "max_tokens": 8, "n_ctx": 512,
        "threads": 1, "template": "gemma3", "personas_dir": tiny["root"] / "personas",
        "heldout_dir": tiny["root"] / "heldout", **kw})


def test_report_has_every_section_and_the_lora_changes_perplexity(tiny, tmp_path):
    report = evaluate.evaluate(_config(tiny, lora=tiny["lora"]))
    ppl = report["perplexity"]
    base, tuned = ppl["base"]["overall"]["perplexity"], ppl["tuned"]["overall"]["perplexity"]
    assert ppl["base"]["critics"][PID]["turns"] == 3
    assert base > 1 and tuned > 1 and abs(base - tuned) > 1e-3
    assert ppl["reduction"]["overall"] == pytest.approx(1 - tuned / base)
    for side in ("base", "tuned"):
        gen = report["generation"][side]["critics"][PID]
        assert gen["replies_n"] == 1 and 0 <= gen["stop_rate"] <= 1
        assert gen["replies"][0]["completion_tokens"] <= 8
    rows = report["comparison"]["rows"]
    assert [(r["strategy"], r["question"]) for r in rows] == [
        (s, q) for s in evaluate.STRATEGIES for q in evaluate.QUESTIONS]
    assert all(r["model"].endswith("adapter.gguf") == (r["strategy"] == "finetuned")
               for r in rows)

    json_path, md_path = evaluate.write_report(report, tmp_path / "out")
    assert json.loads(json_path.read_text(encoding="utf-8"))["comparison"]["rows"] == rows
    md = md_path.read_text(encoding="utf-8")
    assert "## Perplexity and generation" in md and "## Comparison" in md
    table = [line for line in md.splitlines() if line.startswith("| base-f16.gguf")]
    assert len(table) == 8 and "| model | strategy | question | answer | notes |" in md
    assert not list((tmp_path / "out").glob(".*"))


def test_without_lora_only_the_base_is_reported(tiny):
    config = _config(tiny, limit=0)
    report = evaluate.evaluate(config)
    assert set(report["perplexity"]) == {"base"} and set(report["generation"]) == {"base"}
    assert all("no adapter" in r["notes"] for r in report["comparison"]["rows"]
               if r["strategy"] == "finetuned")
    assert "ppl tuned" not in evaluate.summary_table(report)


@pytest.mark.parametrize("args, expected", [
    (["--model", "/nonexistent/model.gguf"], "--model /nonexistent/model.gguf does not exist"),
    (["--lora", "/nonexistent/lora.gguf"], "--lora /nonexistent/lora.gguf does not exist"),
    (["--personas", "nobody"], "unknown persona 'nobody'"),
])
def test_bad_input_exits_2_with_one_clear_line(tiny, args, expected, capsys, tmp_path):
    argv = ["eval", "persona", "--model", str(tiny["base"]), "--out", str(tmp_path), *args]
    with pytest.raises(SystemExit) as exc:
        main(argv)
    assert exc.value.code == 2
    assert expected in capsys.readouterr().err
