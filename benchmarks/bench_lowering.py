"""How long graphspec takes to read, lower and count the largest bundled specs.

    python benchmarks/bench_lowering.py            # writes benchmarks/results/lowering.md
    python benchmarks/bench_lowering.py --repeats 3

Swin-L (384, window 12: 24 blocks, 682 nodes), ViT-H/14 (32 blocks, 650 nodes), and Llama-2-7B
and Mixtral-8x7B at N = 4096 (issue #13's goal: under 0.5 s, symbolic included). Each phase
is timed separately, the median over the repeats (after one warm-up) is reported:

- spec: read the YAML (with `extends`), validate (graphspec.spec.load)
- lower: spec -> unfused IR (graphspec.lower.lower)
- params / macs: analysis.param_count, analysis.macs (default convention)
- by_module: the per-stage table of `graphspec flops` (depth 1)
- symbolic: the same load + lower + macs with symbolic B and H (sympy polynomials)

Deep stacks (`--set L=4096`, the most layers a spec may declare): DETR-R50, the Transformer
and T5-base lowered at 1,024 and 4,096 layers, the time per node at both depths (equal when
lowering is linear) and, side by side in the same run, with Python's cyclic collector on
during lowering (graphspec pauses it: `graphspec.lower._gc_paused`).
"""

from __future__ import annotations

import argparse
import gc
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import graphspec
from graphspec import analysis
from graphspec.lower import _lower, lower
from graphspec.spec import load as load_spec

ROOT = Path(__file__).resolve().parent
SPECS = (("swin_l", ()), ("vit_h14", ()), ("llama2_7b", ("seq_len=4096",)), ("mixtral_8x7b", ("seq_len=4096",)))
PHASES = ("spec", "lower", "params", "macs", "by_module", "total", "symbolic")


def run_once(name: str, overrides: tuple[str, ...] = ()) -> dict[str, float]:
    path = str(graphspec.resolve_spec(name))
    t: dict[str, float] = {}
    t0 = time.perf_counter()
    spec = load_spec(path, overrides)
    t1 = time.perf_counter()
    g = lower(spec)
    t2 = time.perf_counter()
    params = analysis.param_count(g)
    t3 = time.perf_counter()
    macs = analysis.macs(g)
    t4 = time.perf_counter()
    analysis.by_module(g, depth=1)
    t5 = time.perf_counter()
    sym = graphspec.load(path, overrides=list(overrides), symbolic=True)
    poly = sym.macs()
    t6 = time.perf_counter()
    t.update(spec=t1 - t0, lower=t2 - t1, params=t3 - t2, macs=t4 - t3, by_module=t5 - t4,
             total=t5 - t0, symbolic=t6 - t5)
    # counts, not just speed: the spec's figures, and the symbolic polynomial at this size
    assert params == spec.expect["params"], name
    assert macs == (spec.expect["macs"] if not overrides else _at(poly, spec)), name
    return t


def _at(poly, spec) -> int:
    """The symbolic MAC polynomial at the spec's batch and sizes."""
    from graphspec.lower import SYMBOLS

    i = spec.input
    sizes = {"B": i.batch, "N": i.seq_len, "T": i.tgt_len, "H": i.img_size, "W": i.img_size}
    return int(poly.subs({SYMBOLS[k]: v for k, v in sizes.items() if v is not None}))


def bench(name: str, overrides: tuple[str, ...], repeats: int) -> tuple[dict[str, float], int]:
    run_once(name, overrides)  # warm-up: imports, the op registry, sympy caches
    runs = [run_once(name, overrides) for _ in range(repeats)]
    nodes = len(graphspec.load(name, overrides=list(overrides)).graph)
    return {k: statistics.median(r[k] for r in runs) * 1e3 for k in PHASES}, nodes


DEEP = (("detr_r50", "L"), ("transformer_base", "N"), ("t5_base", "L"))


def deep(name: str, var: str, layers: int) -> tuple[int, float, float]:
    """(nodes, seconds to lower as shipped, seconds with the cyclic collector on) at `layers`."""
    spec = load_spec(str(graphspec.resolve_spec(name)), (f"{var}={layers}",))
    times = {}
    for how, fn in (("paused", lower), ("gc on", lambda s: _lower(s, False))):
        gc.collect()
        t = time.perf_counter()
        g = fn(spec)
        times[how] = time.perf_counter() - t
        nodes = len(g)
        del g
    return nodes, times["paused"], times["gc on"]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--repeats", type=int, default=7)
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "lowering.md")
    args = ap.parse_args()

    rows = []
    for name, overrides in SPECS:
        ms, nodes = bench(name, overrides, args.repeats)
        m = graphspec.load(name, overrides=list(overrides))
        label = name + "".join(f" `{o}`" for o in overrides)
        rows.append((label, nodes, m.params(), m.macs(), ms))
        print(f"{name}: {nodes} nodes, " + ", ".join(f"{k} {v:.1f} ms" for k, v in ms.items()), flush=True)

    import sympy

    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    lines = [
        "# Lowering and analysis time",
        "",
        f"`python benchmarks/bench_lowering.py` — Python {platform.python_version()}, sympy {sympy.__version__}, "
        f"{platform.machine()}, {os.cpu_count()} CPUs (load average {load:.1f} at the end); median of "
        f"{args.repeats} runs after one warm-up, in milliseconds. Each run reads the spec, lowers it, counts "
        "parameters and MACs and asserts they equal the spec's `expect:` figures (with an override: "
        "the MACs equal the symbolic polynomial at that size).",
        "",
        "| spec | nodes | params | MACs | spec (read + validate) | lower | params | macs | by_module | "
        "total | symbolic (load + lower + macs) |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, nodes, params, macs, ms in rows:
        lines.append(f"| {name} | {nodes} | {params:,} | {macs:,} | " + " | ".join(f"{ms[k]:.1f}" for k in PHASES) + " |")
    lines += ["", "`total` = spec + lower + params + macs + by_module. The symbolic column builds every shape as a "
              "sympy expression (B, H) and expands the MAC polynomial; it is dominated by sympy.", ""]
    lines += ["## Deep stacks", "", "Lowering only, one run each (seconds; µs per node). `gc on`: the same lowering with "
              "the cyclic collector left on, in the same run.", "",
              "| spec | layers | nodes | lower (s) | µs / node | gc on (s) | gc on / paused |",
              "|---|---:|---:|---:|---:|---:|---:|"]
    for name, var in DEEP:
        for layers in (1024, 4096):
            nodes, paused, on = deep(name, var, layers)
            print(f"{name} {var}={layers}: {nodes} nodes, {paused:.2f} s (gc on {on:.2f} s)", flush=True)
            lines.append(f"| {name} | {layers:,} | {nodes:,} | {paused:.2f} | {paused / nodes * 1e6:.1f} | {on:.2f} | "
                         f"{on / paused:.2f} |")
    lines.append("")
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
