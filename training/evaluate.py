"""`polaris eval persona`: how a persona adapter changes the critics' replies.

Three measurements on the held-out split (training/data/critics/<id>.heldout.jsonl):

1. perplexity of the critics' replies (each assistant turn: mean negative log-likelihood of its
   tokens plus the end-of-turn token, given everything before it rendered with our template and
   the card's system prompt, exactly as trained), base model vs base + LoRA;
2. generation on the held-out first user messages: register adherence (the corpus checker),
   the share of replies that stop by themselves, mean reply length, base vs tuned;
3. the original study's comparison table: strategies plain / system / fewshot / finetuned on
   its two user messages (ORIGIN.md), for one persona.

Token ids are built segment-wise exactly as serving.embedded builds a prompt.
"""

import json
import math
import platform
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from serving.embedded import EmbeddedBackend
from serving.errors import InvalidInput
from serving.files import atomic_write_text
from serving.persona import STARTING_ORDER, Persona, load_personas
from serving.prompting import build_messages
from serving.templates import ChatTemplate, detect_family, get_template
from serving.types import GenerationOptions, Message
from training.corpus import heldout_path
from training.formats import load
from training.quality import turn_register

QUESTIONS = ("더이상 회사에 못있겠어. 나만의 회사를 차릴거야.", "나 이번주에 퇴직서 내려고 해.")
STRATEGIES = ("plain", "system", "fewshot", "finetuned")
DEFAULT_COMPARE = "retired-developer"


# -- token ids -------------------------------------------------------------------------------

def scored_tokens(llm: Any, template: ChatTemplate,
                  messages: Sequence[Message]) -> tuple[list[int], list[list[int]]]:
    """Token ids of a whole conversation (no generation prompt) and, per assistant turn, the
    positions of its reply tokens plus its end-of-turn token (not the text after it)."""
    ids: list[int] = []
    turns: list[list[int]] = []
    in_turn = False
    for segment in template.render(messages, add_generation_prompt=False):
        piece = llm.tokenize(segment.text.encode("utf-8"), add_bos=False, special=segment.special)
        if segment.role != "assistant":
            in_turn = False
        elif not in_turn:  # the reply's words open the assistant's segments
            in_turn = True
            turns.append(list(range(len(ids), len(ids) + len(piece))))
        elif segment.special and segment.text == template.turn_end:
            turns[-1] += range(len(ids), len(ids) + len(piece))
        ids += piece
    return ids, [t for t in turns if t]


def turn_nlls(llm: Any, ids: Sequence[int], turns: Sequence[Sequence[int]]) -> list[float]:
    """Mean negative log-likelihood of each turn's positions, from one pass over `ids`
    (llm must be built with logits_all=True)."""
    llm.reset()
    llm.eval(list(ids))
    scores = llm.scores
    out = []
    for positions in turns:
        rows = np.asarray(scores[[p - 1 for p in positions]], dtype=np.float64)
        top = rows.max(axis=1, keepdims=True)
        logz = np.log(np.exp(rows - top).sum(axis=1)) + top[:, 0]
        picked = rows[np.arange(len(positions)), [ids[p] for p in positions]]
        out.append(float(np.mean(logz - picked)))
    return out


# -- data ------------------------------------------------------------------------------------

def heldout_conversations(persona: Persona, path: Path | None = None,
                          prompt: str = "short") -> list[list[Message]]:
    """Held-out conversations with the persona's system prompt first: the card's full prompt
    (`card`) or its one-line prompt (`short`, what the shipped adapter was trained with)."""
    path = path or heldout_path(persona.id)
    if not path.is_file():
        raise InvalidInput(f"held-out file {path} does not exist: run "
                           f"`python -m training.corpus split` first")
    conversations = []
    for record in load(path, expect="chat").records:
        system = persona.short_prompt() if prompt == "short" else persona.system_prompt
        messages: list[Message] = [{"role": "system", "content": system}]
        messages += [{"role": m.role, "content": m.content} for m in record.messages
                     if m.role != "system"]
        conversations.append(messages)
    return conversations


def strategy_messages(persona: Persona, strategy: str, question: str) -> list[Message]:
    """The prompt of one comparison strategy, built exactly as the chat engine builds it."""
    return build_messages(strategy, persona, [Message(role="user", content=question)])


# -- measurements ----------------------------------------------------------------------------

@dataclass
class EvalConfig:
    model: Path
    lora: Path | None = None
    personas: list[str] = field(default_factory=lambda: list(STARTING_ORDER))
    limit: int = 5
    ppl_limit: int | None = None
    max_tokens: int = 96
    temperature: float = 0.7
    seed: int = 0
    compare_persona: str = DEFAULT_COMPARE
    n_ctx: int = 2048
    threads: int | None = None
    template: str | None = None  # chat template family (default: detected from the GGUF)
    personas_dir: Path | None = None
    heldout_dir: Path | None = None
    prompt: str = "short"  # system prompt for perplexity and generation: short | card


def _check_files(config: EvalConfig) -> None:
    if not config.model.is_file():
        raise InvalidInput(f"--model {config.model} does not exist: give a .gguf file")
    if config.lora is not None and not config.lora.is_file():
        raise InvalidInput(f"--lora {config.lora} does not exist: give a GGUF LoRA "
                           f"(`polaris export lora-gguf`)")


def _heldout(config: EvalConfig, persona: Persona) -> list[list[Message]]:
    path = config.heldout_dir / f"{persona.id}.heldout.jsonl" if config.heldout_dir else None
    return heldout_conversations(persona, path, config.prompt)


def perplexity(config: EvalConfig, personas: dict[str, Persona], lora: Path | None,
               conversations: dict[str, list[list[Message]]]) -> dict[str, Any]:
    """Per critic and overall: perplexity = exp(mean over reply turns of the turn's mean NLL)."""
    import llama_cpp

    vocab = llama_cpp.Llama(model_path=str(config.model), vocab_only=True, verbose=False)
    template = get_template(config.template or detect_family(vocab.metadata))
    encoded = {pid: [scored_tokens(vocab, template, c) for c in convs]
               for pid, convs in conversations.items()}
    vocab.close()
    longest = max((len(ids) for items in encoded.values() for ids, _ in items), default=16)
    n_ctx = min(config.n_ctx, -(-longest // 64) * 64)
    llm = llama_cpp.Llama(model_path=str(config.model), lora_path=str(lora) if lora else None,
                          n_ctx=n_ctx, n_batch=min(512, n_ctx), logits_all=True,
                          n_threads=config.threads or 1, seed=config.seed, verbose=False)
    result: dict[str, Any] = {"critics": {}}
    every: list[float] = []
    try:
        for pid in personas:
            nlls, tokens, skipped = [], 0, 0
            for ids, turns in encoded[pid]:
                if len(ids) > n_ctx or not turns:
                    skipped += 1
                    continue
                nlls += turn_nlls(llm, ids, turns)
                tokens += sum(map(len, turns))
            every += nlls
            result["critics"][pid] = {
                "turns": len(nlls), "tokens": tokens, "skipped_too_long": skipped,
                "mean_nll": statistics.mean(nlls) if nlls else None,
                "perplexity": math.exp(statistics.mean(nlls)) if nlls else None,
            }
    finally:
        llm.close()
    result["overall"] = {"turns": len(every),
                         "mean_nll": statistics.mean(every) if every else None,
                         "perplexity": math.exp(statistics.mean(every)) if every else None}
    return result


def _backend(config: EvalConfig, lora: Path | None) -> EmbeddedBackend:
    return EmbeddedBackend(config.model, lora_path=lora, template=config.template,
                           n_ctx=config.n_ctx, n_threads=config.threads or 1)


def _generate(backend: EmbeddedBackend, messages: list[Message], config: EvalConfig,
              expected: str) -> dict[str, Any]:
    options = GenerationOptions(max_tokens=config.max_tokens, temperature=config.temperature,
                                seed=config.seed)
    completion = backend.complete(messages, options)
    text = completion.text.strip()
    found = turn_register(text)
    return {"answer": text, "register": found, "register_ok": found == expected,
            "stop_reason": completion.stats.stop_reason,
            "stopped": completion.stats.stop_reason == "stop",
            "completion_tokens": completion.stats.completion_tokens}


def generation(config: EvalConfig, personas: dict[str, Persona], backend: EmbeddedBackend,
               conversations: dict[str, list[list[Message]]]) -> dict[str, Any]:
    """Replies to the first user message of up to `limit` held-out conversations per critic."""
    result: dict[str, Any] = {"critics": {}}
    everything: list[dict[str, Any]] = []
    for pid, persona in personas.items():
        replies = []
        for conversation in conversations[pid][: config.limit]:
            first = next(i for i, m in enumerate(conversation) if m["role"] == "user")
            reply = _generate(backend, conversation[: first + 1], config, persona.speech)
            reply["question"] = conversation[first]["content"]
            replies.append(reply)
        everything += replies
        result["critics"][pid] = _summary(replies) | {"replies": replies}
    result["overall"] = _summary(everything)
    return result


def _summary(replies: list[dict[str, Any]]) -> dict[str, Any]:
    n = len(replies)
    return {
        "replies_n": n,
        "register_rate": sum(r["register_ok"] for r in replies) / n if n else None,
        "stop_rate": sum(r["stopped"] for r in replies) / n if n else None,
        "mean_chars": statistics.mean(len(r["answer"]) for r in replies) if n else None,
        "mean_tokens": statistics.mean(r["completion_tokens"] for r in replies) if n else None,
    }


def comparison(config: EvalConfig, persona: Persona, base: EmbeddedBackend,
               tuned: EmbeddedBackend | None) -> list[dict[str, Any]]:
    rows = []
    for strategy in STRATEGIES:
        backend = tuned if strategy == "finetuned" and tuned is not None else base
        model = config.model.name + (f" + {config.lora.name}" if backend is tuned else "")
        for question in QUESTIONS:
            reply = _generate(backend, strategy_messages(persona, strategy, question), config,
                              persona.speech)
            note = f"{reply['register'] or 'no Hangul ending'}, {reply['stop_reason']}"
            if strategy == "finetuned" and tuned is None:
                note += ", no adapter: base model"
            rows.append({"model": model, "strategy": strategy, "question": question,
                         "answer": reply["answer"], "notes": note} | {
                "register": reply["register"], "stop_reason": reply["stop_reason"]})
    return rows


def evaluate(config: EvalConfig) -> dict[str, Any]:
    """All three measurements; the report as a dict (see write_report)."""
    _check_files(config)
    all_personas = load_personas(config.personas_dir)
    unknown = [p for p in [*config.personas, config.compare_persona] if p not in all_personas]
    if unknown:
        raise InvalidInput(f"unknown persona {unknown[0]!r}: use one of "
                           f"{', '.join(all_personas)}")
    personas = {pid: all_personas[pid] for pid in config.personas}
    conversations = {pid: _heldout(config, p) for pid, p in personas.items()}
    scoring = {pid: convs[: config.ppl_limit] for pid, convs in conversations.items()}
    timings: dict[str, float] = {}
    report: dict[str, Any] = {
        "model": str(config.model), "lora": str(config.lora) if config.lora else None,
        "settings": {"personas": config.personas, "limit": config.limit,
                     "ppl_limit": config.ppl_limit, "max_tokens": config.max_tokens,
                     "temperature": config.temperature, "seed": config.seed,
                     "compare_persona": config.compare_persona, "n_ctx": config.n_ctx,
                     "threads": config.threads or 1,
                     "template": config.template, "prompt": config.prompt},
        "machine": platform.platform(),
    }
    started = time.perf_counter()
    ppl = {"base": perplexity(config, personas, None, scoring)}
    if config.lora:
        ppl["tuned"] = perplexity(config, personas, config.lora, scoring)
        for scope in [*[("critics", pid) for pid in personas], ("overall",)]:
            base_p = _dig(ppl["base"], scope)["perplexity"]
            tuned_p = _dig(ppl["tuned"], scope)["perplexity"]
            name = scope[-1]
            ppl.setdefault("reduction", {})[name] = (
                1 - tuned_p / base_p if base_p and tuned_p else None)
    report["perplexity"] = ppl
    timings["perplexity"] = time.perf_counter() - started

    started = time.perf_counter()
    base = _backend(config, None)
    tuned = _backend(config, config.lora) if config.lora else None
    report["generation"] = {"base": generation(config, personas, base, conversations)}
    if tuned:
        report["generation"]["tuned"] = generation(config, personas, tuned, conversations)
    timings["generation"] = time.perf_counter() - started

    started = time.perf_counter()
    report["comparison"] = {"persona": config.compare_persona,
                            "rows": comparison(config, all_personas[config.compare_persona],
                                               base, tuned)}
    timings["comparison"] = time.perf_counter() - started
    report["timings_s"] = {k: round(v, 2) for k, v in timings.items()}
    return report


def _dig(node: dict[str, Any], path: tuple[str, ...]) -> dict[str, Any]:
    for key in path:
        node = node[key]
    return node


# -- report ----------------------------------------------------------------------------------

def _fmt(value: float | None, spec: str) -> str:
    return "–" if value is None else format(value, spec)


def _cell(text: str) -> str:
    return " ".join(text.replace("|", "\\|").split("\n")).strip() or "(empty)"


def summary_table(report: dict[str, Any]) -> str:
    ppl, gen = report["perplexity"], report["generation"]
    tuned = "tuned" in ppl
    head = "| critic | ppl base |" + (" ppl tuned | reduction |" if tuned else "")
    head += " register base | stop base | chars base |"
    head += " register tuned | stop tuned | chars tuned |" if tuned else ""
    rows = [head, "|" + "---|" * (head.count("|") - 1)]
    for name in [*report["settings"]["personas"], "overall"]:
        scope = ("overall",) if name == "overall" else ("critics", name)
        cells = [name, _fmt(_dig(ppl["base"], scope)["perplexity"], ".2f")]
        if tuned:
            cells += [_fmt(_dig(ppl["tuned"], scope)["perplexity"], ".2f"),
                      _fmt(ppl["reduction"][name], ".1%")]
        for side in ("base", "tuned") if tuned else ("base",):
            g = _dig(gen[side], scope)
            cells += [_fmt(g["register_rate"], ".0%"), _fmt(g["stop_rate"], ".0%"),
                      _fmt(g["mean_chars"], ".0f")]
        rows.append("| " + " | ".join(cells) + " |")
    return "\n".join(rows)


def comparison_table(report: dict[str, Any]) -> str:
    rows = ["| model | strategy | question | answer | notes |", "|---|---|---|---|---|"]
    for row in report["comparison"]["rows"]:
        rows.append("| " + " | ".join(_cell(row[k]) for k in
                                      ("model", "strategy", "question", "answer", "notes")) + " |")
    return "\n".join(rows)


_PROMPTS = {"short": "card's one-line prompt (what the adapter was trained with)",
            "card": "card's full system prompt"}


def markdown(report: dict[str, Any]) -> str:
    s = report["settings"]
    lora = f" + `{Path(report['lora']).name}`" if report["lora"] else " (no adapter: base only)"
    return "\n".join([
        "# Persona evaluation", "",
        (f"Model `{Path(report['model']).name}`{lora}; held-out split; seed {s['seed']}, "
        f"temperature {s['temperature']}, max {s['max_tokens']} tokens, "
        f"{s['limit']} generations per critic."), "",
        "## Perplexity and generation", "",
        ("Perplexity: exp of the mean per-turn NLL of the critics' held-out replies (+ end of "
        f"turn) under the {_PROMPTS[s.get('prompt', 'short')]}, the same for base and tuned; "
        "reduction = 1 - tuned/base. Register: share of replies ending in the card's register; "
        "stop: share ending by themselves."), "",
        summary_table(report), "",
        f"## Comparison ({report['comparison']['persona']})", "",
        ("plain = the question alone; system = the card's system prompt; fewshot = system "
        "prompt + the card's examples; finetuned = the adapter with the short prompt."), "",
        comparison_table(report), "",
        "Timings (s): " + ", ".join(f"{k} {v}" for k, v in report["timings_s"].items()), "",
    ])


def write_report(report: dict[str, Any], out: Path) -> tuple[Path, Path]:
    out = Path(out)
    json_path = atomic_write_text(out / "report.json",
                                  json.dumps(report, ensure_ascii=False, indent=2) + "\n")
    md_path = atomic_write_text(out / "report.md", markdown(report))
    return json_path, md_path
