"""Checks that an exported GGUF behaves like the HF model it came from.

Three questions per file: does llama.cpp tokenize exactly as the HF tokenizer does, are its
logits those of the merged HF model (gated for f16 only; quantized files report the numbers),
and does a chat rendered with our own template end on an end-of-turn token in time.
"""

import json
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from serving.files import atomic_write_text
from serving.templates import ChatTemplate
from serving.types import GenerationOptions, Message
from training.examples import segment_ids

PARITY_TEXTS = [
    "안녕하세요, 팀장님. 회사를 그만두고 창업하려고 합니다.",
    "그래서 숫자로 보면요? 매출 3,000만 원, 기간은 18개월로 잡았습니다.",
    "리스크는 뭡니까? 생활비는요?",
    "ㅋㅋㅋ 진짜요?? ㅠㅠ 이미 늦었다니까...",
    "Should I quit my job and start a company next year?",
    "The quick brown fox jumps over the lazy dog. 12345 + 67890 = 80235",
    "Mixed 한국어 and English: 개발자 전향 (developer career switch)",
    "Emoji 🙂🚀👍🏽 그리고 이모지 😅🔥",
    "여러 줄\n두 번째 줄\t탭 포함",
    "공백  두 칸, 끝에 공백 ",
]
SMOKE_MESSAGES: list[Message] = [
    {"role": "system", "content": "당신은 신중한 현실주의자입니다. 존댓말로 짧게 답하세요."},
    {"role": "user", "content": "회사를 그만두고 창업하려고 합니다. 어떻게 생각하세요?"},
]


@dataclass
class Check:
    file: str
    name: str
    passed: bool
    detail: dict[str, Any] = field(default_factory=dict)
    gated: bool = True  # False: reported only; a failure does not fail the export


def hf_prompt_ids(tokenizer: Any, template: ChatTemplate, messages: list[Message]) -> list[int]:
    return [i for seg in template.render(messages) for i in segment_ids(tokenizer, seg)]


def gguf_prompt_ids(llm: Any, template: ChatTemplate, messages: list[Message]) -> list[int]:
    """As serving/embedded.py builds prompts: markup as control tokens, text as text."""
    return [i for seg in template.render(messages)
            for i in llm.tokenize(seg.text.encode("utf-8"), add_bos=False, special=seg.special)]


def token_parity(name: str, llm: Any, tokenizer: Any, template: ChatTemplate) -> Check:
    mismatches = []
    for text in PARITY_TEXTS:
        hf = tokenizer(text, add_special_tokens=False)["input_ids"]
        gguf = llm.tokenize(text.encode("utf-8"), add_bos=False, special=False)
        if hf != gguf:
            mismatches.append({"text": text, "hf": hf, "gguf": gguf})
    hf = hf_prompt_ids(tokenizer, template, SMOKE_MESSAGES)
    gguf = gguf_prompt_ids(llm, template, SMOKE_MESSAGES)
    if hf != gguf:
        mismatches.append({"text": "(rendered chat prompt)", "hf": hf, "gguf": gguf})
    return Check(name, "token_parity", not mismatches,
                 {"strings": len(PARITY_TEXTS) + 1, "mismatches": mismatches})


def logits_check(name: str, llm: Any, hf_logits: Any, ids: list[int], tolerance: float,
                 gated: bool) -> Check:
    """Max |HF - llama.cpp| over every position, relative to the largest HF logit."""
    import numpy as np

    llm.reset()
    llm.eval(ids)
    gguf = np.asarray(llm.scores[: len(ids)], dtype=np.float64)
    hf = np.asarray(hf_logits, dtype=np.float64)
    vocab = min(gguf.shape[1], hf.shape[1])
    gguf, hf = gguf[:, :vocab], hf[:, :vocab]
    diff = float(np.abs(gguf - hf).max())
    scale = float(np.abs(hf).max())
    relative = diff / scale if scale else diff
    top1 = float((gguf.argmax(axis=1) == hf.argmax(axis=1)).mean())
    return Check(name, "logits", relative <= tolerance,
                 {"max_abs_diff": diff, "logit_scale": scale, "relative": relative,
                  "tolerance": tolerance, "top1_agreement": top1, "positions": len(ids)},
                 gated=gated)


def template_check(name: str, llm: Any, expected: str) -> Check:
    embedded = llm.metadata.get("tokenizer.chat_template", "")
    return Check(name, "chat_template", embedded == expected,
                 {"embedded_chars": len(embedded)})


def smoke_chat(name: str, path: Path, family: str, max_tokens: int, require_stop: bool,
               n_ctx: int, threads: int) -> Check:
    """A greedy reply through the embedded backend, i.e. exactly as Polaris will serve it."""
    from serving import embedded

    backend = embedded.EmbeddedBackend(path, template=family, n_ctx=n_ctx, n_threads=threads)
    try:
        reply = backend.complete(SMOKE_MESSAGES, GenerationOptions(
            max_tokens=max_tokens, temperature=0.0, repeat_penalty=1.0, seed=0))
    finally:
        embedded._LOADED.pop(backend._key(), None)  # the shared cache would keep every file
    stopped = reply.stats.stop_reason == "stop"
    return Check(name, "smoke_chat", stopped,
                 {"stopped": stopped, "stop_reason": reply.stats.stop_reason,
                  "completion_tokens": reply.stats.completion_tokens, "max_tokens": max_tokens,
                  "stop_required": require_stop, "reply": reply.text[:300]},
                 gated=require_stop)


def verify_gguf(path: Path, kind: str, tokenizer: Any, template: ChatTemplate, jinja: str,
                hf_logits: Any, logit_ids: list[int], *, tolerance: float, max_tokens: int,
                require_stop: bool, n_ctx: int, threads: int) -> list[Check]:
    import llama_cpp

    # logits_all keeps n_ctx x n_vocab floats (1 GB for Gemma at 1024): a context just big
    # enough for the prompt
    llm = llama_cpp.Llama(model_path=str(path), n_ctx=len(logit_ids) + 16, logits_all=True,
                          n_threads=threads, verbose=False)
    try:
        checks = [
            token_parity(path.name, llm, tokenizer, template),
            template_check(path.name, llm, jinja),
            logits_check(path.name, llm, hf_logits, logit_ids, tolerance, gated=kind == "f16"),
        ]
    finally:
        llm.close()
    checks.append(smoke_chat(path.name, path, template.family, max_tokens, require_stop, n_ctx,
                             threads))
    return checks


def failures(checks: list[Check]) -> list[Check]:
    return [c for c in checks if c.gated and not c.passed]


def write_report(out: Path, report: dict[str, Any], checks: list[Check]) -> None:
    """report.json (everything) and report.md (a table a person reads)."""
    report = {**report, "passed": not failures(checks), "checks": [asdict(c) for c in checks]}
    timings = report["timings_s"]
    atomic_write_text(out / "report.json", json.dumps(report, ensure_ascii=False, indent=2))
    lines = [f"# GGUF export report: {'PASSED' if report['passed'] else 'FAILED'}", "",
             f"- run: `{report['run_dir']}`", f"- template: {report['template']}",
             "- timings (s): " + ", ".join(f"{k} {v:.1f}" for k, v in timings.items()),
             "", "| file | check | result | detail |", "|---|---|---|---|"]
    for c in checks:
        result = "pass" if c.passed else ("FAIL" if c.gated else "no (not required)")
        lines.append(f"| {c.file} | {c.name} | {result} | {_summary(c)} |")
    atomic_write_text(out / "report.md", "\n".join(lines) + "\n")


def _summary(check: Check) -> str:
    d = check.detail
    if check.name == "token_parity":
        return f"{d['strings'] - len(d['mismatches'])}/{d['strings']} strings identical"
    if check.name == "logits":
        return (f"max abs diff {d['max_abs_diff']:.2e} at logit scale {d['logit_scale']:.2f} "
                f"(relative {d['relative']:.2e}, tolerance {d['tolerance']:.0e}); "
                f"top-1 agreement {d['top1_agreement']:.0%}")
    if check.name == "smoke_chat":
        how = "stopped" if d["stopped"] else "did not stop"
        return f"{how} after {d['completion_tokens']} tokens (limit {d['max_tokens']})"
    return ", ".join(f"{k} {v}" for k, v in d.items())
