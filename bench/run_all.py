"""`make bench`: every benchmark once, as one table against its target (not pass/fail).

Usage: .venv/bin/python bench/run_all.py [--quick]
"""

import argparse
import os
import platform
import sys
import time
import traceback
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))


def machine() -> str:
    cpu = platform.processor() or platform.machine()
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                cpu = line.split(":", 1)[1].strip()
                break
    except OSError:
        pass
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    return (f"{cpu}, {os.cpu_count()} cores, Python {platform.python_version()}, "
            f"load average {load:.1f} at start, {time.strftime('%Y-%m-%d %H:%M')}")


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer runs, smaller sizes")
    args = parser.parse_args()
    q = args.quick
    rows: list[tuple[str, str, str]] = []  # (what, measured, target)

    def section(name, fn):
        print(f"… {name}", file=sys.stderr, flush=True)
        try:
            fn()
        except Exception as exc:  # noqa: BLE001 - one broken bench must not hide the others
            traceback.print_exc()
            rows.append((name, f"failed: {type(exc).__name__}: {exc}", ""))

    def engine():
        import bench_engine

        r = bench_engine.run(tokens=64 if q else 128, runs=3 if q else 7)
        (raw_ttft, raw_rate), (eng_ttft, eng_rate) = r["medians"].values()
        rate = f"{eng_rate:.1f} / {raw_rate:.1f} = {r['ratio']:.3f} ×"
        ttft = f"{eng_ttft:.1f} / {raw_ttft:.1f} ms = {r['extra_ttft_ms']:+.1f} ms"
        rows.append(("engine decode tok/s vs raw llama_cpp", rate, "≥ 0.97 ×"))
        rows.append(("engine first token vs raw (prompt cached)", ttft, "≤ +20 ms"))

    def judge():
        import bench_judge

        r = bench_judge.run(tokens=96 if q else 160, runs=1 if q else 2)
        same = "identical tokens" if r["identical tokens"] == 1 else "TOKENS DIFFER"
        rows.append(("judge decode (JSON grammar) vs llama.cpp's grammar sampler",
                     (f"{r['ours decode tok/s']:.1f} / {r['llama.cpp decode tok/s']:.1f} tok/s = "
                     f"{r['decode speed-up x']:.2f} × ({same})"), "–"))

    def store():
        import bench_store

        for db, r in bench_store.run(appends=300 if q else 1000,
                                     opens=5 if q else 15).items():
            rows.append((f"store append p50 / p99 ({db})",
                         (f"{r['append p50 ms']:.2f} / {r['append p99 ms']:.2f} ms (bare driver "
                         f"INSERT+COMMIT p50 {r['raw driver append p50 ms']:.2f} ms)"),
                         "p50 ≤ 2 ms"))
            read_all = next(k for k in r if k.startswith("read all"))
            raw = next(k for k in r if k.startswith("raw driver") and "append" not in k)
            rows.append((f"open a 10 000-message session in the chat page ({db})",
                         f"{r['open (UI page) ms']:.1f} ms", "≤ 50 ms"))
            rows.append((f"read all 10 000 messages ({db}) vs the bare driver",
                         f"{r[read_all]:.1f} / {r[raw]:.1f} ms = {r[read_all] / r[raw]:.2f} ×",
                         "–"))

    def ui():
        import bench_ui

        r = bench_ui.run(runs=2 if q else 5)
        measured = (f"{r['render s (median)']:.2f} s (max {r['render s (max)']:.2f}); "
                    f"empty session {r['empty session s (median)']:.2f} s, one-line "
                    f"Streamlit page {r['streamlit floor s (median)']:.2f} s")
        rows.append(("UI: render a 500-message session", measured, "≤ 1.5 s"))
        rows.append(("UI: 500-message session over a one-line Streamlit page",
                     f"+{r['over floor s']:.2f} s", "–"))

    def export():
        import bench_export

        for fmt, r in bench_export.run(runs=1 if q else 3).items():
            measured = (f"{r['export s (median)']:.2f} s, peak {r['peak MiB']:.0f} MiB "
                        f"({r['output MiB']:.1f} MiB out)")
            rows.append((f"export 10 000 messages as {fmt}", measured, "–"))

    header = machine()
    for name, fn in (("engine", engine), ("judge", judge), ("store", store), ("ui", ui),
                     ("export", export)):
        section(name, fn)
    print(f"\n{header}\n")
    print("| benchmark | measured | target |")
    print("|---|---|---|")
    for what, measured, target in rows:
        print(f"| {what} | {measured} | {target} |")


if __name__ == "__main__":
    main()
