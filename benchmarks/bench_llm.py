"""Generated PyTorch vs Hugging Face transformers, same weights: a Llama-style and a
Mixtral-style model, forward and one training step (forward + backward), side by side.

    python benchmarks/bench_llm.py            # writes benchmarks/results/llm.md
    python benchmarks/bench_llm.py --quick    # batch 1 only, fewer repeats

CPU, fp32, 2 threads; N = 256; the median of timed repeats after a warm-up, the two models\nrun alternately so that both see the same load on a shared machine. Llama-style: 1024
wide, 8 layers, 16 heads, 4 KV heads, intermediate 2816, vocab 32000 (LlamaForCausalLM, eager
and sdpa attention); Mixtral-style: the same with 4 experts of 1408, top 2. The generated
module runs the default passes (fused attention through F.scaled_dot_product_attention).
Outputs are checked to agree before timing.
"""

from __future__ import annotations

import argparse
import platform
import statistics
import sys
import time
from pathlib import Path

import torch
import transformers
from graphspec.codegen import emit, load

import graphspec
from graphspec.passes import run_pipeline
from graphspec.weights import to_graphspec

ROOT = Path(__file__).resolve().parent
N = 256
BASE = dict(vocab_size=32000, hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
            tie_word_embeddings=False, rms_norm_eps=1e-5)
MODELS = {
    "llama": ("llama2_7b", transformers.LlamaForCausalLM, transformers.LlamaConfig, dict(intermediate_size=2816),
              ["d=1024", "L=8", "h=16", "d_ff=2816", "decoder.kv_heads=4", f"seq_len={N}"]),
    "mixtral": ("mixtral_8x7b", transformers.MixtralForCausalLM, transformers.MixtralConfig,
                dict(intermediate_size=1408, num_local_experts=4, num_experts_per_tok=2, sliding_window=None),
                ["d=1024", "L=8", "h=16", "kv=4", "d_ff=1408", "experts=4", "top_k=2", f"seq_len={N}"]),
}


def timed(fns, repeats: int) -> list[float]:
    """Median ms of each of `fns`, run alternately (this machine is shared: interleaving puts
    both under the same load)."""
    for fn in fns:
        fn()
    out: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t = time.perf_counter()
            fn()
            out[i].append(time.perf_counter() - t)
    return [statistics.median(o) * 1000 for o in out]


def pair(name: str, attn: str):
    spec, cls, cfg_cls, extra, sets = MODELS[name]
    torch.manual_seed(0)
    hf = cls(cfg_cls(**BASE, **extra, attn_implementation=attn)).eval()
    m = graphspec.load(spec, sets)
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    gen = emit(g, m.spec)
    net = getattr(load(gen.source), gen.class_name)().eval()
    net.load_state_dict(to_graphspec(hf, g, "llama"), strict=True)
    return hf, net


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true")
    args = ap.parse_args()
    torch.set_num_threads(2)
    batches, reps = ((1,), 3) if args.quick else ((1, 8), 5)
    rows = []
    for name in MODELS:
        for attn in (("sdpa",) if args.quick else ("eager", "sdpa")):
            hf, net = pair(name, attn)
            for B in batches:
                ids = torch.randint(0, 32000, (B, N))
                with torch.no_grad():
                    ref, got = hf(input_ids=ids).logits, net(ids)
                    assert (ref - got).abs().max() / ref.abs().max() < 1e-4
                    fwd = timed([lambda hf=hf, ids=ids: hf(input_ids=ids), lambda net=net, ids=ids: net(ids)], reps)

                def step(model, call):
                    model.zero_grad(set_to_none=True)
                    call().float().pow(2).mean().backward()

                train = timed([lambda hf=hf, ids=ids: step(hf, lambda: hf(input_ids=ids).logits),
                               lambda net=net, ids=ids: step(net, lambda: net(ids))], reps)
                rows.append((name, attn, B, *fwd, *train))
                print(rows[-1], flush=True)
    lines = ["# Generated LLM modules vs Hugging Face (CPU, fp32, 2 threads, N = 256)", "",
             f"python {sys.version.split()[0]}, torch {torch.__version__}, transformers {transformers.__version__}, "
             f"{platform.machine()}; median of {reps} after a warm-up; ratio = HF time / generated time.", "",
             "| model | HF attention | batch | HF fwd ms | generated fwd ms | ratio | HF train ms | generated train ms "
             "| ratio |", "| --- | --- | --- | --- | --- | --- | --- | --- | --- |"]
    for name, attn, B, hf_f, g_f, hf_t, g_t in rows:
        lines.append(f"| {name} | {attn} | {B} | {hf_f:.1f} | {g_f:.1f} | {hf_f / g_f:.2f}x | {hf_t:.1f} | {g_t:.1f} "
                     f"| {hf_t / g_t:.2f}x |")
    (ROOT / "results" / ("llm_quick.md" if args.quick else "llm.md")).write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    main()
