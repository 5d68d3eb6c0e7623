"""Time the default pass pipeline (fuse_attention, fuse_qkv, cse, dce) on Swin-L at 384×384.

    python benchmarks/bench_passes.py [--spec swin_l] [--repeat 7] [--out benchmarks/results/passes.md]

Reports the median wall time of the whole pipeline as the manager runs it (the verifier and
the MAC/parameter report after every pass included) and without those checks, the per-pass
split, and the lowering time for scale. Goal: under 1 s for Swin-L on a 2-core machine.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time
from pathlib import Path

import graphspec
from graphspec.passes import run_pipeline


def median_time(fn, repeat: int) -> tuple[float, object]:
    times, out = [], None
    for _ in range(repeat):
        t0 = time.perf_counter()
        out = fn()
        times.append(time.perf_counter() - t0)
    return statistics.median(times), out


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--spec", default="swin_l")
    ap.add_argument("--pipeline", default="default")
    ap.add_argument("--repeat", type=int, default=7)
    ap.add_argument("--out", default=str(Path(__file__).parent / "results" / "passes.md"))
    args = ap.parse_args()

    t_lower, model = median_time(lambda: graphspec.load(args.spec), args.repeat)
    g = model.graph
    run_pipeline(g, args.pipeline, echo=lambda s: None)  # warm-up (imports, caches)
    t_checked, (out, report) = median_time(lambda: run_pipeline(g, args.pipeline), args.repeat)
    t_bare, _ = median_time(lambda: run_pipeline(g, args.pipeline, check=False), args.repeat)

    rows = "\n".join(f"| {r.name} | {r.nodes_before} → {r.nodes_after} | {r.applied} | "
                     f"{1000 * r.seconds:.1f} |" for r in report)
    text = f"""# Pass pipeline timing

`python benchmarks/bench_passes.py` — spec `{args.spec}` ({model.spec.input.img_size}×{model.spec.input.img_size}),
pipeline `{args.pipeline}`, median of {args.repeat} runs.

| what | time |
|---|---|
| whole pipeline, verifier + report after each pass (as the CLI runs it) | **{1000 * t_checked:.0f} ms** |
| whole pipeline, `check=False` (passes and MAC report only) | {1000 * t_bare:.0f} ms |
| lowering the spec (for scale) | {1000 * t_lower:.0f} ms |

Goal: < 1 s. {"Met." if t_checked < 1 else "NOT met."}

| pass | nodes | rewritten | pass time (ms, last run) |
|---|---|---|---|
{rows}

Graph: {len(g)} nodes -> {len(out)} nodes; MACs {report[0].macs_before:,} before and {report[-1].macs_after:,} after
(unchanged), parameters {report[-1].params_after:,}.

Machine: {platform.processor() or platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.
"""
    Path(args.out).parent.mkdir(parents=True, exist_ok=True)
    Path(args.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
