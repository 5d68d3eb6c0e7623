"""Generated PyTorch vs Hugging Face transformers, same weights: Swin-T and ViT-B/16 forward.

    python benchmarks/bench_codegen.py            # writes benchmarks/results/codegen.md
    python benchmarks/bench_codegen.py --quick    # fewer repeats

CPU, fp32, 2 threads, eval, no_grad; batch 1 and 8; the median of timed repeats after warm-up.
The generated module is timed as `graphspec codegen` writes it (default passes: fused attention
through F.scaled_dot_product_attention and one qkv projection) and without passes (attention
as explicit matmul and softmax). Weights come from the HF model through graphspec.weights, and
outputs are checked to agree before timing. Also: the time to generate Swin-T's source.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
from graphspec.codegen import emit, load

import graphspec
from graphspec.weights import to_graphspec

ROOT = Path(__file__).resolve().parent
THREADS = 2


def generated(spec: str, passes: str):
    m = graphspec.load(spec)
    g = m.graph
    if passes != "none":
        from graphspec.passes import run_pipeline

        g, _ = run_pipeline(g, passes)
    gen = emit(g, m.spec)
    return g, getattr(load(gen.source), gen.class_name)().eval()


def hf_model(spec: str):
    import transformers

    if spec == "swin_t":
        cfg = transformers.SwinConfig(image_size=224, patch_size=4, embed_dim=96, depths=[2, 2, 6, 2],
                                      num_heads=[3, 6, 12, 24], window_size=7, num_labels=1000)
        return transformers.SwinForImageClassification(cfg).eval()
    cfg = transformers.ViTConfig(image_size=224, patch_size=16, hidden_size=768, num_hidden_layers=12,
                                 num_attention_heads=12, intermediate_size=3072, layer_norm_eps=1e-6,
                                 num_labels=1000)
    return transformers.ViTForImageClassification(cfg).eval()


def medians_ms(fns: dict, x, repeats: int, warmup: int = 2) -> dict[str, float]:
    """Median wall time of each function, the functions interleaved repeat by repeat (in a
    rotating order) so that load from other processes falls on all of them alike."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    with torch.inference_mode():
        for _ in range(warmup):
            for n in names:
                fns[n](x)
        for r in range(repeats):
            for n in names[r % len(names):] + names[:r % len(names)]:
                t = time.perf_counter()
                fns[n](x)
                times[n].append(time.perf_counter() - t)
    return {n: 1000 * statistics.median(v) for n, v in times.items()}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="fewer repeats")
    ap.add_argument("--out", default=str(ROOT / "results" / "codegen.md"))
    args = ap.parse_args()
    torch.set_num_threads(THREADS)
    torch.manual_seed(0)
    load_before = _load()
    passes = ["default", "none"]
    rows = []
    for spec in ("swin_t", "vit_b16"):
        hf = hf_model(spec)
        impl = getattr(hf.config, "_attn_implementation", "?")
        nets = {}
        for p in passes:
            g, net = generated(spec, p)
            net.load_state_dict(to_graphspec(hf, g))
            nets[p] = net
        for batch in (1, 8):
            x = torch.randn(batch, 3, 224, 224)
            with torch.inference_mode():
                ref = hf(pixel_values=x).logits
                for p, net in nets.items():
                    err = (net(x) - ref).abs().max().item()
                    assert err < 1e-3, f"{spec} {p}: outputs differ by {err}"
            reps = (5 if args.quick else 15) if batch == 1 else (3 if args.quick else 7)
            t = medians_ms({"hf": lambda x, hf=hf: hf(pixel_values=x).logits, **nets}, x, reps)
            t_hf, t_gen = t.pop("hf"), t
            rows.append((spec, batch, t_hf, t_gen, impl))
            print(f"{spec} b={batch}: HF {t_hf:.1f} ms ({impl}), "
                  + ", ".join(f"generated[{p}] {t:.1f} ms" for p, t in t_gen.items()), flush=True)
    # codegen time of Swin-T: lowering, passes and source
    m = graphspec.load("swin_t")
    t_gen_src = []
    for p in passes:
        times = []
        for _ in range(5):
            t = time.perf_counter()
            g = m.graph
            if p != "none":
                from graphspec.passes import run_pipeline

                g, _ = run_pipeline(graphspec.load("swin_t").graph, p)
            emit(g, m.spec)
            times.append(time.perf_counter() - t)
        t_gen_src.append((p, 1000 * statistics.median(times)))
    t = time.perf_counter()
    graphspec.load("swin_t")
    t_lower = 1000 * (time.perf_counter() - t)
    write(Path(args.out), rows, t_gen_src, t_lower, load_before)
    return 0


def _load() -> str:
    try:
        import os

        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except (OSError, AttributeError):
        return "unknown"


def write(path: Path, rows, t_src, t_lower, load_before) -> None:
    lines = [
        "# Generated PyTorch vs Hugging Face transformers",
        "",
        f"`python benchmarks/bench_codegen.py` — torch {torch.__version__}, "
        f"transformers {__import__('transformers').__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {THREADS} threads, fp32, eval, inference_mode; median of timed repeats "
        "after 2 warm-ups (batch 1: 15, batch 8: 7), the three modules interleaved repeat by repeat. "
        "Same weights (HF random init mapped with graphspec.weights; outputs agree within 1e-3 before "
        f"timing). Load average at start: {load_before}, end: {_load()} (a shared machine: read the "
        "ratios, which interleaving keeps fair, rather than the absolute times).",
        "",
        "`generated[default]`: as `graphspec codegen` writes it (fused attention through "
        "F.scaled_dot_product_attention, one qkv projection). `generated[none]`: no passes (attention "
        "as explicit matmul / softmax, separate q, k, v projections). Ratio = HF time / generated time "
        "(> 1: the generated module is faster).",
        "",
        "| model | batch | HF (ms) | HF attention | generated[default] (ms) | ratio | generated[none] (ms) | ratio |",
        "|---|---:|---:|---|---:|---:|---:|---:|",
    ]
    for spec, batch, t_hf, t_gen, impl in rows:
        d, n = t_gen["default"], t_gen["none"]
        lines.append(f"| {spec} | {batch} | {t_hf:.1f} | {impl} | {d:.1f} | {t_hf / d:.2f} | {n:.1f} | {t_hf / n:.2f} |")
    lines += ["", "Codegen time of Swin-T (median of 5; the IR is lowered once, "
              f"{t_lower:.0f} ms):", ""]
    lines += [f"- passes `{p}`: {t:.0f} ms (passes + module classes + source)" for p, t in t_src]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


if __name__ == "__main__":
    sys.exit(main())
