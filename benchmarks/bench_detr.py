"""DETR-R50: lowering + analysis time at 800×1333, and latency of the generated module (eager),
onnxruntime on graphspec's ONNX and TVM llvm (untuned default schedules) measured in one run.

    python benchmarks/bench_detr.py            # writes benchmarks/results/detr.md

Latencies come from bench_backends.py at 800×1066 (one process, same weights and image, each
backend checked against eager, interleaved medians) and land in results/detr_backends.md. TVM's
untuned CPU kernels are neither parallel nor vectorized: expect about a minute a call.
"""

from __future__ import annotations

import os
import platform
import statistics
import subprocess
import sys
import time
from pathlib import Path

import graphspec
from graphspec import analysis

OUT = Path(__file__).resolve().parent / "results" / "detr.md"


def lowering_ms(runs: int = 7) -> tuple[float, int, int]:
    times = []
    for _ in range(runs + 1):
        t = time.perf_counter()
        m = graphspec.load("detr_r50", ["width=1333"])
        macs, params = m.macs(), m.params()
        analysis.by_module(m.graph, depth=1)
        times.append(time.perf_counter() - t)
    return statistics.median(times[1:]) * 1e3, macs, params


def latencies(out: Path, height: int, width: int, untuned_budget: float) -> None:
    """bench_backends.py on DETR at height×width: eager, onnxruntime, TVM llvm untuned, same
    weights and image, interleaved medians; writes its own table to `out`."""
    cmd = [sys.executable, str(Path(__file__).with_name("bench_backends.py")), "--specs", "detr_r50",
           "--set", f"height={height}", "--set", f"width={width}", "--trials", "0", "--rounds", "5",
           "--no-torch-compile", "--untuned-budget", str(untuned_budget), "--out", str(out)]
    subprocess.run(cmd, check=True)


def main() -> None:
    ms, macs, params = lowering_ms()
    lat = OUT.with_name("detr_backends.md")
    latencies(lat, 800, 1066, untuned_budget=60.0)
    lines = [
        "# DETR-R50", "",
        f"`python benchmarks/bench_detr.py` — {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.", "",
        f"Lowering + params + MACs + per-module table at 800×1333 (median of 7): **{ms:.1f} ms** "
        f"({params:,} params, {macs / 1e9:.2f} GMACs). Goal < 1 s.", "",
        f"Latency at 800×1066, batch 1, fp32 (eager, onnxruntime, TVM llvm untuned): [{lat.name}]({lat.name}).",
    ]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
