"""DETR-R50: lowering + analysis time at 800×1333, and latency of the generated module (eager),
onnxruntime on graphspec's ONNX and TVM llvm (untuned default schedules) measured in one run.

    python benchmarks/bench_detr.py            # writes benchmarks/results/detr.md

Latencies use `graphspec verify --json` (one random image, all backends in one process, errors
vs eager printed too). TVM's untuned CPU kernels are neither parallel nor vectorized, so the
latency run uses a reduced image (320×427) to stay within minutes; the lowering timing uses
the full 800×1333.
"""

from __future__ import annotations

import json
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


def latencies(height: int, width: int) -> list[dict]:
    cmd = [sys.executable, "-m", "graphspec.cli.main", "verify", "detr_r50", "--json", "--targets", "torch,onnx,llvm",
           "--set", f"height={height}", "--set", f"width={width}"]
    out = subprocess.run(cmd, capture_output=True, text=True, check=True, env={**os.environ, "OMP_NUM_THREADS": "2"})
    return json.loads(out.stdout[out.stdout.index("{"):])["results"]


def main() -> None:
    ms, macs, params = lowering_ms()
    rows = latencies(320, 427)
    lines = [
        "# DETR-R50", "",
        f"`python benchmarks/bench_detr.py` — {platform.machine()}, {os.cpu_count()} CPUs, Python {platform.python_version()}.", "",
        f"Lowering + params + MACs + per-module table at 800×1333 (median of 7): **{ms:.1f} ms** "
        f"({params:,} params, {macs / 1e9:.2f} GMACs). Goal < 1 s.", "",
        "Latency at 320×427, batch 1, fp32, one run of `graphspec verify` (same random weights and image):", "",
        "| target | max-abs vs eager | latency (ms) |", "| --- | ---: | ---: |",
    ]
    for r in rows:
        lines.append(f"| {r['target']} | {r['max_abs']:.2e} | {r['latency_ms']:.1f} |")
    lines += ["", "`eager` is graphspec's reference path, `torch` the generated module, `llvm` TVM with default "
              "(untuned) schedules."]
    OUT.parent.mkdir(exist_ok=True)
    OUT.write_text("\n".join(lines) + "\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
