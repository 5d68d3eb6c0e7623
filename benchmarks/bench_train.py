"""`graphspec train` vs a hand-written loop over the same generated module, and 2-process scaling.

    OMP_NUM_THREADS=1 python benchmarks/bench_train.py          # writes benchmarks/results/train.md

1. One process: graphspec.train.train() (what `graphspec train` runs) and a hand-written loop —
   the same module built the same way (meta, to_empty, init_weights), AdamW, the same synthetic
   batches, cross-entropy on the next token — alternate round by round so both see the same
   load; per-step wall times after each run's first step, medians and their ratio.
2. Two processes (`graphspec train --nproc 2 --ddp`, gloo, CPU, 1 thread each) vs one, the same
   global batch: tokens/s from the progress lines (first step dropped), speedup / 2 = the
   strong-scaling efficiency. The machine has 2 cores shared with other users: expect little.

The model: GPT-2's width (768, 12 heads, vocab 50257) with 2 layers, N = 64, global batch 4.
"""

from __future__ import annotations

import argparse
import os
import platform
import re
import statistics
import subprocess
import sys
import time
from pathlib import Path

import torch

from graphspec.train import TrainConfig, build, loss_fn, synthetic_batch, task_of, train

ROOT = Path(__file__).resolve().parent
SPEC, SETS = "gpt2", ["L=2", "seq_len=64"]
BATCH = 4


def graphspec_steps(steps: int) -> list[float]:
    """Wall time between the ends of successive steps (progress lines), printing included."""
    stamps: list[float] = []

    def log(line: str) -> None:
        print(line, file=open(os.devnull, "w"))  # noqa: SIM115  the formatting and a write, not a terminal
        if line.startswith("step "):
            stamps.append((time.perf_counter(), time.process_time()))

    train(SPEC, TrainConfig(steps=steps, batch=BATCH, seed=0), overrides=SETS, log=log)
    return _diffs(stamps)


def _diffs(stamps):
    """(wall, CPU) seconds of each step after the first."""
    return [(b[0] - a[0], b[1] - a[1]) for a, b in zip(stamps, stamps[1:], strict=False)]


def hand_steps(steps: int) -> list[float]:
    model_info, _, cls = build(SPEC, SETS)
    task = task_of(model_info.graph)
    with torch.device("meta"):
        model = cls()
    model.to_empty(device="cpu")
    torch.manual_seed(0)
    with torch.no_grad():
        model.init_weights()
    opt = torch.optim.AdamW(model.parameters(), lr=3e-4)
    model.train()
    stamps = []
    for step in range(1, steps + 1):
        x, y = synthetic_batch(task, 0, step, BATCH)
        loss = loss_fn(task, model(x), y)
        opt.zero_grad(set_to_none=True)
        loss.backward()
        opt.step()
        float(loss.detach())
        stamps.append((time.perf_counter(), time.process_time()))
    return _diffs(stamps)  # from the end of step 1 on


def cli_tokens_per_s(nproc: int, steps: int) -> tuple[float, str]:
    args = [SPEC, *sum((["--set", s] for s in SETS), []), "--steps", str(steps), "--batch", str(BATCH)]
    if nproc > 1:
        args += ["--nproc", str(nproc), "--ddp"]
    cmd = [sys.executable, "-m", "graphspec.cli.train_cmd", *args]
    env = {**os.environ, "OMP_NUM_THREADS": "1"}
    r = subprocess.run(cmd, capture_output=True, text=True, timeout=900, env=env)
    if r.returncode:
        raise SystemExit(r.stdout + r.stderr)
    rates = [float(m[1].replace(",", "")) for m in re.finditer(r"  ([\d,]+) tokens/s", r.stdout)][1:]
    return statistics.median(rates), "graphspec train " + " ".join(args)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--steps", type=int, default=6)
    ap.add_argument("--out", default=str(ROOT / "results" / "train.md"))
    a = ap.parse_args()
    torch.set_num_threads(1)
    ours, hand, ratios = [], [], []
    for _ in range(a.rounds):
        o_r, h_r = graphspec_steps(a.steps), hand_steps(a.steps)
        ours += o_r
        hand += h_r
        ratios.append(statistics.median(t[1] for t in o_r) / statistics.median(t[1] for t in h_r))
    o, h = statistics.median(t[0] for t in ours), statistics.median(t[0] for t in hand)
    oc, hc = statistics.median(t[1] for t in ours), statistics.median(t[1] for t in hand)
    one, cmd1 = cli_tokens_per_s(1, a.steps)
    two, cmd2 = cli_tokens_per_s(2, a.steps)
    load = os.getloadavg()[0]
    text = f"""# `graphspec train`: loop overhead and 2-process scaling

Command: `OMP_NUM_THREADS=1 python benchmarks/bench_train.py --rounds {a.rounds} --steps {a.steps}`
({platform.processor() or platform.machine()}, {os.cpu_count()} logical CPUs shared with other users, load {load:.1f};
torch {torch.__version__}, fp32, 1 thread per process). Model: `{SPEC}` with {' '.join(SETS)} (width 768, vocab 50257),
global batch {BATCH}.

## One process: graphspec's loop vs a hand-written loop, same module and batches

| loop | median step, wall (ms) | median step, CPU (ms) | steps timed |
| --- | ---: | ---: | ---: |
| graphspec.train.train (`graphspec train`) | {o * 1000:.0f} | {oc * 1000:.0f} | {len(ours)} |
| hand-written | {h * 1000:.0f} | {hc * 1000:.0f} | {len(hand)} |

Ratio graphspec / hand-written: wall **{o / h:.3f}**, CPU time **{oc / hc:.3f}** (goal: within
1.05); CPU-time ratio per round {", ".join(f"{r:.3f}" for r in ratios)}. CPU time (one thread)
is what the loop itself costs; wall time also carries the other users' load. Step time = the
time between the ends of successive steps (graphspec: its progress-line callback, the line's
formatting included), the first step of each run dropped; runs alternate, {a.rounds} rounds.

## Two processes (DDP, gloo) vs one, same global batch

| processes | median tokens/s | command |
| --- | ---: | --- |
| 1 | {one:,.0f} | `{cmd1}` |
| 2 | {two:,.0f} | `{cmd2}` |

Speedup {two / one:.2f}x, strong-scaling efficiency **{100 * two / one / 2:.0f}%** on 2 shared cores.
"""
    Path(a.out).write_text(text)
    print(text)


if __name__ == "__main__":
    main()
