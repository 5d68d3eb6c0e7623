"""Generated PyTorch vs Hugging Face transformers, same weights: a Llama-style and a
Mixtral-style model, forward and one training step, batch 1 and 8, side by side.

    python benchmarks/bench_llm.py            # writes benchmarks/results/llm.md
    python benchmarks/bench_llm.py --quick    # batch 1, 3 repeats: benchmarks/results/llm_quick.md

CPU, fp32, 1 thread by default (--threads; this machine is shared), N = 256. Each case runs the
HF model and the generated module alternately, repeat by repeat, after one warm-up each, so that
both see the same load; the table gives the medians of CPU and wall time and their ratios
(HF / generated: > 1 means the generated module is faster) and the range of the per-repeat
ratios. Forward: eval,
no_grad. Train step: zero_grad, forward, cross-entropy on the next token, backward, AdamW step.
Llama-style: 1024 wide, 8 layers, 16 heads, 4 KV heads, intermediate 2816, vocab 32000
(LlamaForCausalLM, sdpa attention); Mixtral-style: the same with 4 experts of 1408, top 2
(MixtralForCausalLM, its default experts implementation). The generated module runs the
default passes (attention through F.scaled_dot_product_attention with enable_gqa, one qkv
projection). Logits are checked to agree before timing.
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
import torch.nn.functional as F
import transformers
from graphspec.codegen import emit, load

import graphspec
from graphspec.passes import run_pipeline
from graphspec.weights import to_graphspec

ROOT = Path(__file__).resolve().parent
N, VOCAB = 256, 32000
BASE = dict(vocab_size=VOCAB, hidden_size=1024, num_hidden_layers=8, num_attention_heads=16, num_key_value_heads=4,
            tie_word_embeddings=False, rms_norm_eps=1e-5)
MODELS = {
    "llama": ("llama2_7b", transformers.LlamaForCausalLM, transformers.LlamaConfig, dict(intermediate_size=2816),
              ["d=1024", "L=8", "h=16", "d_ff=2816", "decoder.kv_heads=4", f"seq_len={N}"]),
    "mixtral": ("mixtral_8x7b", transformers.MixtralForCausalLM, transformers.MixtralConfig,
                dict(intermediate_size=1408, num_local_experts=4, num_experts_per_tok=2, sliding_window=None),
                ["d=1024", "L=8", "h=16", "kv=4", "d_ff=1408", "experts=4", "top_k=2", f"seq_len={N}"]),
}


def timed(fns, repeats: int) -> tuple[list[list[float]], list[list[float]]]:
    """Wall and CPU ms of each of `fns` per repeat, run alternately after one warm-up each. The
    machine is shared: interleaving puts both under the same load, and the process's CPU time
    (one thread) does not count the time other jobs hold the core."""
    for fn in fns:
        fn()
    wall: list[list[float]] = [[] for _ in fns]
    cpu: list[list[float]] = [[] for _ in fns]
    for _ in range(repeats):
        for i, fn in enumerate(fns):
            t, c = time.perf_counter(), time.process_time()
            fn()
            wall[i].append((time.perf_counter() - t) * 1000)
            cpu[i].append((time.process_time() - c) * 1000)
    return wall, cpu


def pair(name: str, attn: str):
    """HF's model and the generated module with HF's weights."""
    spec, cls, cfg_cls, extra, sets = MODELS[name]
    torch.manual_seed(0)
    hf = cls(cfg_cls(**BASE, **extra, attn_implementation=attn))
    m = graphspec.load(spec, sets)
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    gen = emit(g, m.spec)
    net = getattr(load(gen.source), gen.class_name)()
    net.load_state_dict(to_graphspec(hf, g, "llama"), strict=True)
    return hf, net


def forward(model, call):
    model.eval()
    with torch.no_grad():
        call()


def train_step(model, call, opt, ids):
    """zero_grad, forward, next-token cross-entropy, backward, AdamW step."""
    model.train()
    opt.zero_grad(set_to_none=True)
    logits = call()
    F.cross_entropy(logits[:, :-1].flatten(0, 1).float(), ids[:, 1:].flatten()).backward()
    opt.step()


def case(hf, net, B: int, reps: int) -> list[tuple]:
    ids = torch.randint(0, VOCAB, (B, N), generator=torch.Generator().manual_seed(B))
    hf_call, gen_call = (lambda: hf(input_ids=ids).logits), (lambda: net(ids))
    with torch.no_grad():
        ref, got = hf_call(), gen_call()
        err = ((ref - got).abs().max() / ref.abs().max()).item()
        assert err < 1e-4, f"generated logits differ from HF's by {err:.2e} relative"
    rows = [("forward", timed([lambda: forward(hf, hf_call), lambda: forward(net, gen_call)], reps))]
    hf_opt, gen_opt = (torch.optim.AdamW(m.parameters(), lr=1e-5) for m in (hf, net))
    rows.append(("train step", timed([lambda: train_step(hf, hf_call, hf_opt, ids),
                                      lambda: train_step(net, gen_call, gen_opt, ids)], reps)))
    return rows


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--quick", action="store_true", help="batch 1 only, 3 repeats")
    ap.add_argument("--repeats", type=int, default=5)
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--batches", default="1,8")
    ap.add_argument("--models", default="llama,mixtral")
    ap.add_argument("--output", help="results file (default: results/llm.md, --quick: results/llm_quick.md)")
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    reps = 3 if args.quick else args.repeats
    batches = [1] if args.quick else [int(b) for b in args.batches.split(",")]
    load_start = os.getloadavg()[0]
    rows = []
    for name in args.models.split(","):
        hf, net = pair(name, "sdpa")
        for B in batches:
            for what, ((w_hf, w_gen), (c_hf, c_gen)) in case(hf, net, B, reps):
                med = [statistics.median(t) for t in (w_hf, w_gen, c_hf, c_gen)]
                ratios = [a / b for a, b in zip(c_hf, c_gen, strict=True)]
                rows.append((name, B, what, *med, min(ratios), max(ratios)))
                print(name, B, what, " ".join(f"{t:.0f}" for t in med), f"cpu ratio {med[2] / med[3]:.2f}",
                      f"load {os.getloadavg()[0]:.1f}", flush=True)
        del hf, net
    cmd = "python benchmarks/bench_llm.py " + " ".join(sys.argv[1:])
    lines = [f"# Generated LLM modules vs Hugging Face (CPU, fp32, {args.threads} thread(s), N = {N})", "",
             f"`{cmd.strip()}` — python {sys.version.split()[0]}, torch {torch.__version__}, transformers "
             f"{transformers.__version__}, {platform.machine()}, {os.cpu_count()} CPUs shared with other jobs: "
             f"load average {load_start:.1f} at start, {os.getloadavg()[0]:.1f} at the end. Median of {reps} "
             "repeats after a warm-up, HF and generated alternating repeat by repeat; ratio = HF median / generated "
             "median (> 1: the generated module is faster), with the range of the per-repeat ratios. CPU ms: the "
             "process's CPU time (one thread: not the time other jobs hold the core), the steadier figure here; "
             "wall ms: elapsed time. Forward: "
             "eval, no_grad. Train step: zero_grad, forward, next-token cross-entropy, backward, AdamW step.", "",
             "Llama-style: LlamaForCausalLM, 1024 wide, 8 layers, 16 heads, 4 KV heads, intermediate 2816, vocab "
             "32000. Mixtral-style: MixtralForCausalLM, the same with 4 experts of 1408, top 2. HF: sdpa attention "
             "(and, for Mixtral, its default experts implementation). Generated: `graphspec codegen` with the "
             "default passes, HF's weights loaded strictly; logits agree to 1e-4 before timing.", "",
             "| model | batch | step | HF CPU ms | generated CPU ms | ratio (CPU) | per-repeat ratios (CPU) "
             "| HF wall ms | generated wall ms | ratio (wall) |",
             "| --- | ---: | --- | ---: | ---: | ---: | --- | ---: | ---: | ---: |"]
    for name, B, what, w_hf, w_gen, c_hf, c_gen, lo, hi in rows:
        lines.append(f"| {name} | {B} | {what} | {c_hf:,.0f} | {c_gen:,.0f} | {c_hf / c_gen:.2f}x "
                     f"| {lo:.2f}–{hi:.2f} "
                     f"| {w_hf:,.0f} | {w_gen:,.0f} | {w_hf / w_gen:.2f}x |")
    out = Path(args.output) if args.output else ROOT / "results" / ("llm_quick.md" if args.quick else "llm.md")
    out.write_text("\n".join(lines) + "\n")
    print(f"wrote {out}")


if __name__ == "__main__":
    main()
