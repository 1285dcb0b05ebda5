"""Embedded chat engine vs raw llama_cpp on the same model, prompt and sampling.

Prints decode tok/s and first-token time for both, and their ratio, from one run.
Usage: .venv/bin/python bench/bench_engine.py [--model models/X.gguf] [--tokens 128] [--runs 5]
"""

import argparse
import statistics
import time
from pathlib import Path

from llama_cpp import Llama  # the baseline: llama-cpp-python's own token loop

from serving.embedded import EmbeddedBackend
from serving.persona import load_personas
from serving.prompting import build_messages
from serving.types import GenerationOptions

ASK = "더이상 회사에 못있겠어. 나만의 회사를 차릴거야."


def raw_run(llm: Llama, tokens: list[int], n: int) -> tuple[float, float, int]:
    """llama_cpp's own token generator over the same prompt tokens, same sampling, no chat
    layer: the floor our engine's overhead (template, detokenize, stops, lock) is measured on."""
    llm.set_seed(1)
    eos = llm.token_eos()
    started = time.perf_counter()
    first = None
    count = 0
    for token in llm.generate(tokens, top_k=40, top_p=0.95, min_p=0.05, temp=0.8,
                              repeat_penalty=1.1, reset=True):
        if token == eos or count == n:
            break
        count += 1
        llm.detokenize([token])
        first = first or time.perf_counter()
    end = time.perf_counter()
    return first - started, (count - 1) / (end - first), count


def engine_run(backend: EmbeddedBackend, messages, n: int) -> tuple[float, float, int]:
    stats = None
    for chunk in backend.stream(messages, GenerationOptions(max_tokens=n, seed=1)):
        if chunk.done:
            stats = chunk.stats
    return stats.ttft_s, stats.tok_per_s, stats.completion_tokens


def run(model: str = "models/gemma-3-270m-q4_k_m.gguf", tokens: int = 128,
        runs: int = 5) -> dict:
    """Medians for both, interleaved runs; the numbers `main` prints and bench/run_all.py uses."""
    persona = load_personas()["retired-developer"]
    messages = build_messages("system", persona, [{"role": "user", "content": ASK}])
    backend = EmbeddedBackend(Path(model), n_ctx=2048)
    prompt = backend.prompt_tokens(messages)
    # the same loaded model and context for both, so only the chat layer differs
    raw = backend.load().llm
    results = {"raw llama_cpp": [], "polaris engine": []}
    engine_run(backend, messages, 8)  # warm both
    raw_run(raw, prompt, 8)
    for _ in range(runs):  # interleaved so machine noise hits both alike
        results["raw llama_cpp"].append(raw_run(raw, prompt, tokens))
        results["polaris engine"].append(engine_run(backend, messages, tokens))
    medians = {
        name: (statistics.median(r[0] for r in rows) * 1000, statistics.median(r[1] for r in rows))
        for name, rows in results.items()
    }
    (raw_ttft, raw_rate), (eng_ttft, eng_rate) = medians.values()
    return {"prompt_tokens": len(prompt), "new_tokens": tokens, "runs": runs,
            "threads": backend.n_threads, "medians": medians,
            "ratio": eng_rate / raw_rate, "extra_ttft_ms": eng_ttft - raw_ttft}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", default="models/gemma-3-270m-q4_k_m.gguf")
    parser.add_argument("--tokens", type=int, default=128)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    result = run(args.model, args.tokens, args.runs)
    print(f"prompt {result['prompt_tokens']} tokens, {args.tokens} new tokens, {args.runs} runs, "
          f"{result['threads']} threads")
    print(f"{'':16} {'ttft ms (median)':>17} {'decode tok/s (median)':>22}")
    for name, (ttft, rate) in result["medians"].items():
        print(f"{name:16} {ttft:17.1f} {rate:22.1f}")
    print(f"engine/raw tok/s ratio: {result['ratio']:.3f}   "
          f"extra first-token time: {result['extra_ttft_ms']:+.1f} ms")


if __name__ == "__main__":
    main()
