"""ModernBERT's generated PyTorch against Hugging Face's ModernBertModel, side by side: the module
`graphspec codegen` writes with passes `none` (explicit scores, local_mask, softmax) and `default`
(fused q|k|v, one F.scaled_dot_product_attention with the local band as its mask), and HF's own
model with attn_implementation "eager" and "sdpa", all four with HF's weights.

    python benchmarks/bench_modernbert.py            # writes benchmarks/results/modernbert.md
    python benchmarks/bench_modernbert.py --quick

ModernBERT-base's layers (768 wide, 12 heads, GeGLU 1152, window 128) cut to 3 layers, global,
local, local (one period of the released pattern) at sequence lengths N; CPU, fp32, 2 threads,
batch 1, inference_mode; outputs agree with HF's (max relative difference below) before timing;
the median of repeats, the four interleaved repeat by repeat.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from graphspec.codegen import emit, load

import graphspec
from graphspec.passes import run_pipeline
from graphspec.weights import to_graphspec

ROOT = Path(__file__).resolve().parent


def models(N: int) -> dict[str, torch.nn.Module]:
    import transformers

    out = {}
    torch.manual_seed(0)
    for impl in ("eager", "sdpa"):
        cfg = transformers.ModernBertConfig(num_hidden_layers=3, attn_implementation=impl)
        out[f"HF {impl}"] = transformers.ModernBertModel(cfg).eval()
    out["HF sdpa"].load_state_dict(out["HF eager"].state_dict())
    m = graphspec.load("modernbert_base", ["L=3", f"seq_len={N}"])
    for passes in ("none", "default"):
        g = m.graph if passes == "none" else run_pipeline(m.graph, "default")[0]
        gen = emit(g, m.spec)
        net = getattr(load(gen.source), gen.class_name)().eval()
        net.load_state_dict(to_graphspec(out["HF eager"], g, "modernbert"), strict=True)
        out[f"graphspec {passes}"] = net
    return out


def bench(N: int, repeats: int) -> tuple:
    nets = models(N)
    ids = torch.randint(0, 50368, (1, N), generator=torch.Generator().manual_seed(1))

    def run(name):
        y = nets[name](input_ids=ids) if name.startswith("HF") else nets[name](ids)
        return y.last_hidden_state if name.startswith("HF") else y

    with torch.inference_mode():
        want = run("HF eager")
        errs = {n: ((run(n) - want).abs().max() / want.abs().max()).item() for n in nets}
        assert max(errs.values()) < 1e-4, errs
        times = {n: [] for n in nets}
        for _ in range(repeats):
            for n in nets:
                t = time.perf_counter()
                run(n)
                times[n].append(time.perf_counter() - t)
    med = {n: statistics.median(t) * 1e3 for n, t in times.items()}
    print(f"N={N}: " + ", ".join(f"{n} {v:.1f} ms" for n, v in med.items()), flush=True)
    return N, med, errs


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true")
    ap.add_argument("--out", type=Path, default=ROOT / "results" / "modernbert.md")
    args = ap.parse_args()
    torch.set_num_threads(2)
    repeats = 3 if args.quick else 9
    rows = [bench(N, repeats) for N in (512, 2048)]
    names = list(rows[0][1])
    load_avg = os.getloadavg()[0] if hasattr(os, "getloadavg") else float("nan")
    import transformers

    lines = ["# ModernBERT: generated PyTorch vs Hugging Face", "",
             f"`python benchmarks/bench_modernbert.py` — torch {torch.__version__}, transformers "
             f"{transformers.__version__}, Python {platform.python_version()}, {platform.machine()}, 2 threads, fp32, "
             f"batch 1, inference_mode; median of {repeats} repeats after a warm-up, the four models interleaved. "
             f"Load average at the end: {load_avg:.1f}. ModernBERT-base's first 3 layers (global, local 128, local "
             "128) with the token embedding and the final norm; all four hold the same weights and agree with HF "
             "eager to the max relative difference shown.", "",
             "| N | " + " | ".join(f"{n} (ms)" for n in names) + " | HF sdpa / graphspec default |",
             "|---:|" + "---:|" * len(names) + "---:|"]
    for N, med, _ in rows:
        lines.append(f"| {N} | " + " | ".join(f"{med[n]:.1f}" for n in names)
                     + f" | {med['HF sdpa'] / med['graphspec default']:.2f} |")
    lines += ["", "| N | " + " | ".join(f"{n}: max rel. diff" for n in names) + " |",
              "|---:|" + "---:|" * len(names)]
    for N, _, errs in rows:
        lines.append(f"| {N} | " + " | ".join(f"{errs[n]:.1e}" for n in names) + " |")
    lines.append("")
    args.out.write_text("\n".join(lines), encoding="utf-8")
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
