"""Judge decoding: our grammar-constrained greedy (serving/constrained.py, what the embedded
backend runs for the judge) vs llama.cpp's own grammar sampler, on the same model, the same
judge prompt (a labelled debate from the corpus) and the same JSON schema, in one run.

Prints seconds per answer for both, the speed-up, and whether the tokens are identical.
Usage: .venv/bin/python bench/bench_judge.py [--model models/X.gguf] [--tokens 160] [--runs 2]
"""

import argparse
import statistics
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from serving.constrained import GreedyGrammar
from serving.embedded import EmbeddedBackend, _llama_cpp, json_grammar
from serving.judge import judge_messages, judge_schema
from serving.persona import load_personas
from training.judge_eval import debate_request, load_debates


def decode(llm, stops, prompt: list[int], grammar, tokens: int,
           ours: bool) -> tuple[float, float, list[int]]:
    """(whole answer s incl. the prompt, decode tok/s after the first token, tokens)"""
    processor = GreedyGrammar(_llama_cpp(), llm, grammar) if ours else None
    started = time.perf_counter()
    out: list[int] = []
    first = None
    llm.reset()  # both from a whole prefill: a cached prompt shifts logits a little
    generator = llm.generate(prompt, temp=0.0, repeat_penalty=1.0, reset=True,
                             grammar=None if ours else grammar,
                             logits_processor=[processor] if ours else None)
    for token in generator:
        if token in stops or len(out) == tokens:
            break
        out.append(token)
        first = first or time.perf_counter()
    generator.close()
    ended = time.perf_counter()
    if processor:
        processor.close()
    return ended - started, (len(out) - 1) / (ended - first), out


def run(model: Path | None = None, tokens: int = 160, runs: int = 2) -> dict[str, float]:
    backend = EmbeddedBackend(model_path=model or ROOT / "models" / "gemma-3-270m-q4_k_m.gguf",
                              n_ctx=8192)
    loaded = backend.load()
    llm, stops = loaded.llm, loaded.stop_ids
    goal, critics, turns, ledger = debate_request(load_debates(limit=1)[0], load_personas())
    prompt = backend.prompt_tokens(judge_messages(goal, critics, turns, ledger))
    grammar = json_grammar(judge_schema(ledger))
    decode(llm, stops, prompt, grammar, 8, ours=True)  # warm-up
    theirs = [decode(llm, stops, prompt, grammar, tokens, ours=False) for _ in range(runs)]
    ours = [decode(llm, stops, prompt, grammar, tokens, ours=True) for _ in range(runs)]
    base = statistics.median(t for t, _, _ in theirs)
    mine = statistics.median(t for t, _, _ in ours)
    base_rate = statistics.median(r for _, r, _ in theirs)
    my_rate = statistics.median(r for _, r, _ in ours)
    return {"prompt tokens": len(prompt), "answer tokens": len(ours[0][2]),
            "llama.cpp grammar s": base, "ours s": mine, "answer speed-up x": base / mine,
            "llama.cpp decode tok/s": base_rate, "ours decode tok/s": my_rate,
            "decode speed-up x": my_rate / base_rate,
            "identical tokens": float(all(o == theirs[0][2] for _, _, o in theirs + ours))}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--model", type=Path)
    parser.add_argument("--tokens", type=int, default=160)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    for key, value in run(args.model, args.tokens, args.runs).items():
        print(f"{key:22} {value:10.2f}")


if __name__ == "__main__":
    main()
