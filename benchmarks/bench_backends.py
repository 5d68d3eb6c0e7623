"""Backends side by side: PyTorch eager, torch.compile, onnxruntime and TVM (llvm) on Swin-T and ViT-B/16.

    python benchmarks/bench_backends.py                 # writes benchmarks/results/backends.md
    python benchmarks/bench_backends.py --quick         # fewer trials and repeats, no torch.compile

CPU, fp32, batch 1 (and 8 with --batch8), --threads intra-op threads for every backend
(default 2, all cores here; on a shared machine a second busy process makes 2-thread runs
collapse 10-20x, spin-waiting on a core they do not get: use --threads 1 there). Every backend runs the graph that
`graphspec build` compiles (default passes) with the same random weights and input, and its
output is checked against eager (1e-4) before timing. Timed calls are interleaved backend by
backend, round after round, so that load from other processes falls on all of them alike.

- eager: the module graphspec.codegen generates (`--target torch`).
- torch.compile: that module compiled (inductor), in a subprocess killed after --compile-budget
  seconds; it times eager again beside itself and the table shows its ratio to that.
- onnxruntime: graphspec's ONNX (opset 23, fused Attention), CPU provider, denormals flushed
  (backends/onnx.py `session`).
- onnxruntime (timm export): with --timm-onnx DIR, timm's own model exported by
  torch.onnx.export (benchmarks/peers/export_timm_onnx.py, in a venv of its own), same session
  options; timm's random weights differ from ours, so only its latency is compared.
- tvm-untuned: Relax straight from the IR, `tvm.compile` for llvm with no schedules (naive
  loops), timed once or twice: it is slow.
- tvm-tuned: MetaSchedule, --trials trials over every kernel (backends/metaschedule.py); with
  --tune-dir a database left there by an earlier run (e.g. `graphspec build --tune 1100`'s
  DIR/tuning copied to TUNE_DIR/<spec>) is reused, and the table reports what its tuning took.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent
THREADS = int(os.environ.get("GRAPHSPEC_BENCH_THREADS", "2"))
TOL = 1e-4
SETS: list[str] = []  # --set overrides, passed on to the torch.compile child
SPECS = ("swin_t", "vit_b16")


def prepare(spec: str, batch: int, sets: tuple[str, ...] = ()):
    from graphspec.backends import weights

    import graphspec
    from graphspec.passes import run_pipeline

    m = graphspec.load(spec, [*sets, f"batch={batch}"])
    g, _ = run_pipeline(m.graph, "default", echo=lambda s: None)
    return m, g, weights.random_params(g, seed=0), weights.random_inputs(g, seed=1)


def timed_rounds(fns: dict, x, rounds: int, budget_s: dict[str, float], per_turn: int = 3,
                 slow: frozenset[str] = frozenset()) -> dict[str, list[float]]:
    """Seconds per call of each backend, interleaved turn by turn (rotating order), so that load
    from other processes falls on all of them alike. A turn is one untimed call, then `per_turn`
    timed ones: the untimed call absorbs the previous backend's thread pool still spinning on
    the cores (libgomp, onnxruntime and TVM all spin-wait after a call; on 2 cores that alone
    made every backend ~40% slower when calls alternated one by one). A backend stops being
    called once its total time passes its budget (at least one timed call each); `slow` ones
    (over 1 s a call) get one timed call a turn and no untimed one."""
    names = list(fns)
    times: dict[str, list[float]] = {n: [] for n in names}
    for r in range(rounds):
        for n in names[r % len(names):] + names[:r % len(names)]:
            if times[n] and sum(times[n]) > budget_s.get(n, 1e9):
                continue
            if n not in slow:
                fns[n](x)
            for _ in range(1 if n in slow else per_turn):
                t = time.perf_counter()
                fns[n](x)
                times[n].append(time.perf_counter() - t)
    return times


def torch_compile_child(spec: str, batch: int, rounds: int, sets: tuple[str, ...] = ()) -> None:
    """Run in a subprocess: eager vs torch.compile of the generated module, as JSON on stdout."""
    import torch
    from graphspec.backends.torch import generate

    torch.set_num_threads(THREADS)
    m, g, params, x = prepare(spec, batch, sets)
    net = generate(g, m.spec, params).net
    xt = torch.from_numpy(x[g.inputs[0].name])
    t0 = time.perf_counter()
    compiled = torch.compile(net)
    with torch.no_grad():
        ref = net(xt)
        out = compiled(xt)
    compile_s = time.perf_counter() - t0
    err = float((out - ref).abs().max())
    with torch.no_grad():
        times = timed_rounds({"eager": net, "compiled": compiled}, xt, rounds, {})
    print(json.dumps({"compile_s": compile_s, "err": err,
                      **{k: statistics.median(v) for k, v in times.items()}}))


def run_torch_compile(spec: str, batch: int, rounds: int, budget_s: float) -> dict:
    cmd = [sys.executable, __file__, "--child-torch-compile", spec, str(batch), str(rounds),
           *(a for kv in SETS for a in ("--set", kv))]
    try:
        p = subprocess.run(cmd, capture_output=True, text=True, timeout=budget_s)
    except subprocess.TimeoutExpired:
        return {"skipped": f"over the {budget_s:.0f} s budget"}
    if p.returncode != 0:
        return {"skipped": "failed: " + (p.stderr.strip().splitlines() or ["?"])[-1][:120]}
    return json.loads(p.stdout.strip().splitlines()[-1])


def bench_model(spec: str, batch: int, args, tune_root: Path) -> dict:
    import torch
    from graphspec.backends import targets as tg
    from graphspec.backends import tvm as gt
    from graphspec.backends.metaschedule import tune as ms_tune
    from graphspec.backends.torch import generate

    torch.set_num_threads(THREADS)
    m, g, params, x = prepare(spec, batch, tuple(args.set))
    res: dict = {"spec": spec, "batch": batch, "build_s": {}, "errors": {}}
    log = lambda s: print(f"  {spec} b={batch}: {s}", flush=True)  # noqa: E731

    t0 = time.perf_counter()
    net = generate(g, m.spec, params)
    res["build_s"]["torch (codegen)"] = time.perf_counter() - t0
    fns = {"eager": net.run}
    ref = net.run(x)

    t0 = time.perf_counter()
    onnx_c = tg.compile(g, params, "onnx")
    res["build_s"]["onnx (export)"] = time.perf_counter() - t0
    res["onnx_nodes"] = onnx_c.info["onnx"]["nodes"]
    from graphspec.backends import onnx as gx

    sess = gx.session(onnx_c.handle, threads=THREADS)
    fns["onnxruntime"] = lambda i: sess.run(None, dict(i))
    peer = args.timm_onnx / f"{spec}-b{batch}.onnx" if args.timm_onnx else None
    if peer and peer.exists():
        import onnx

        res["timm_onnx_nodes"] = len(onnx.load(str(peer), load_external_data=False).graph.node)
        psess = gx.session(str(peer), threads=THREADS)
        pin = psess.get_inputs()[0].name
        fns["onnxruntime (timm export)"] = lambda i, s=psess, n=pin: s.run(None, {n: next(iter(i.values()))})

    low = None
    if not args.no_untuned or args.trials:
        t0 = time.perf_counter()
        low = gt.lower(g)
        res["build_s"]["tvm (lower)"] = time.perf_counter() - t0
    if not args.no_untuned:
        t0 = time.perf_counter()
        ex, _ = gt.build(low, "llvm")
        res["build_s"]["tvm-untuned (compile)"] = time.perf_counter() - t0
        r = gt.Runner(ex, low.params, params)
        fns["tvm-untuned"] = lambda i, r=r: r(*(i[n] for n in low.inputs))
    if args.trials:
        wd = tune_root / f"{spec}"
        t0 = time.perf_counter()
        low = gt.lower(g, attention="matmul")  # what `graphspec build --tune` lowers
        db, info = ms_tune(low, wd, args.trials, log=log)
        # a reused database reports what its tuning took when it was made (graphspec_tuning.json)
        by = info.get("tuned_by") if info.get("reused") else None
        res["build_s"]["tvm-tuned (tuning)"] = by["seconds"] if by else time.perf_counter() - t0
        res["tuning"] = info
        t0 = time.perf_counter()
        ex_t, binfo = gt.build(low, "llvm", database=db)
        res["build_s"]["tvm-tuned (compile)"] = time.perf_counter() - t0
        res["tuning"].update(applied=binfo.get("tuned_funcs"), prim_funcs=binfo.get("prim_funcs"),
                             prepacked=binfo.get("prepacked_weights"), padded=binfo.get("padded_matmuls"))
        rt = gt.Runner(ex_t, low.params, params)
        fns["tvm-tuned"] = lambda i, r=rt: r(*(i[n] for n in low.inputs))

    slow = set()
    for name, fn in fns.items():
        if name == "eager" or "timm" in name:  # timm's weights are its own: latency only
            continue
        t0 = time.perf_counter()
        out = fn(x)
        first = time.perf_counter() - t0
        if first > 1.0:
            slow.add(name)
        err = max(float(np.abs(a - b).max()) / max(float(np.abs(b).max()), 1e-12) for a, b in zip(out, ref, strict=True))
        res["errors"][name] = err
        assert err <= TOL, f"{spec} {name}: relative error {err:.2e} > {TOL}"
        log(f"{name}: first call {first * 1e3:.0f} ms, rel err {err:.1e}")
    rounds = args.rounds if batch == 1 else max(args.rounds // 2, 3)
    times = timed_rounds(fns, x, rounds, {"tvm-untuned": args.untuned_budget}, slow=frozenset(slow))
    res["ms"] = {k: 1e3 * statistics.median(v) for k, v in times.items()}
    res["calls"] = {k: len(v) for k, v in times.items()}
    if args.torch_compile:
        log("torch.compile (subprocess) ...")
        res["torch.compile"] = run_torch_compile(spec, batch, rounds, args.compile_budget)
    log("ms: " + ", ".join(f"{k} {v:.1f}" for k, v in res["ms"].items()))
    return res


def _load() -> str:
    try:
        return f"{os.getloadavg()[0]:.1f} on {os.cpu_count()} CPUs"
    except (OSError, AttributeError):
        return "unknown"


def write(path: Path, results: list[dict], args, load_before: str, total_s: float) -> None:
    import onnxruntime
    import torch
    import tvm

    cols = ["eager", "torch.compile", "onnxruntime", "onnxruntime (timm export)", "tvm-untuned", "tvm-tuned"]
    cols = [c for c in cols if c == "torch.compile" or any(c in r["ms"] for r in results)]
    lines = [
        "# Backends: PyTorch eager, torch.compile, onnxruntime, TVM llvm",
        "",
        f"`python benchmarks/bench_backends.py{' --quick' if args.quick else ''}` — torch {torch.__version__}, "
        f"onnxruntime {onnxruntime.__version__}, tvm {tvm.__version__}, Python {platform.python_version()}, "
        f"{platform.machine()}, {THREADS} thread{'s' * (THREADS > 1)} per backend, fp32. Same graph (default passes), weights and input for "
        f"every backend; each output agrees with eager within {TOL:g} (relative) before timing. Median of "
        f"timed calls interleaved backend by backend ({args.rounds} rounds at batch 1, half as many at 8; "
        f"a turn is one untimed call and 3 timed ones; tvm-untuned one call a turn, stopping after "
        f"{args.untuned_budget:.0f} s). "
        f"Load average at start: {load_before}, end: {_load()}: a shared machine, read the ratios. "
        f"Whole run: {total_s / 60:.1f} min." + (f" Spec overrides: `{' '.join('--set ' + kv for kv in args.set)}`."
                                                  if args.set else ""),
        "",
        "Time per call in ms; in brackets the speed-up over eager (> 1: faster than eager). torch.compile "
        "is timed in its own process beside a second eager, and its ratio is to that eager.",
        "",
        "| model | batch | " + " | ".join(cols) + " |",
        "|---|---:|" + "---:|" * len(cols),
    ]
    for r in results:
        ms, e = r["ms"], r["ms"]["eager"]
        cells = []
        for c in cols:
            if c == "torch.compile":
                tc = r.get("torch.compile")
                if not tc:
                    cells.append("—")
                elif "skipped" in tc:
                    cells.append(f"skipped ({tc['skipped']})")
                else:
                    cells.append(f"{tc['compiled'] * 1e3:.1f} ({tc['eager'] / tc['compiled']:.2f}×)")
            elif c in ms:
                n = r["calls"][c]
                cells.append(f"{ms[c]:.1f} ({e / ms[c]:.2f}×)" + ("" if n > 2 else f" [{n} call{'s' * (n > 1)}]"))
            else:
                cells.append("—")
        lines.append(f"| {r['spec']} | {r['batch']} | " + " | ".join(cells) + " |")
    keys = sorted({k for r in results for k in r["build_s"]})
    lines += ["", "## Build and tuning times (s)", "",
              "| model | batch | " + " | ".join(keys) + " | torch.compile (first call) |",
              "|---|---:|" + "---:|" * (len(keys) + 1)]
    for r in results:
        tc = r.get("torch.compile") or {}
        cells = [f"{r['build_s'][k]:.1f}" if k in r["build_s"] else "—" for k in keys]
        cells.append(f"{tc['compile_s']:.1f}" if "compile_s" in tc else "—")
        lines.append(f"| {r['spec']} | {r['batch']} | " + " | ".join(cells) + " |")
    lines += ["", "## Notes", ""]
    for r in results:
        t = r.get("tuning")
        bits = [f"ONNX nodes {r['onnx_nodes']}"]
        if "timm_onnx_nodes" in r:
            bits.append(f"timm's ONNX export {r['timm_onnx_nodes']} nodes")
        if t:
            by = t.get("tuned_by") or t
            bits.append(f"MetaSchedule: {by.get('new_trials')} trials in {by.get('seconds', 0) / 60:.1f} min "
                        f"({'reused database' if t.get('reused') else 'tuned in this run'}"
                        + (f", of which {t['new_trials']} in this run for the kernels it lacked" if t.get("reused") and t.get("new_trials") else "")
                        + (f", {by['incremental_runs']} incremental run(s)" if by.get("incremental_runs") else "")
                        + ") over "
                        f"{t['kernels']} kernels ({t['heavy_kernels']} matmul/conv), {t['applied']} of "
                        f"{t['prim_funcs']} kernels of the built module got a tuned schedule, "
                        f"{t.get('prepacked')} weights prepacked, {t.get('padded')} matmuls padded to a multiple of 8 rows")
        ms = r["ms"]
        if "onnxruntime (timm export)" in ms:
            bits.append(f"graphspec's ONNX vs timm's, both through onnxruntime: "
                        f"{ms['onnxruntime (timm export)'] / ms['onnxruntime']:.2f}× the speed")
        if "tvm-tuned" in ms:
            bits.append(f"tvm-tuned vs eager {ms['eager'] / ms['tvm-tuned']:.2f}×, vs onnxruntime "
                        f"{ms['onnxruntime'] / ms['tvm-tuned']:.2f}×")
        bits.append("max rel. error vs eager: " + ", ".join(f"{k} {v:.1e}" for k, v in r["errors"].items()))
        lines.append(f"- {r['spec']} b={r['batch']}: " + "; ".join(bits) + ".")
    lines += [
        "- tvm-untuned is `tvm.compile` with no schedule at all: the CPU pipeline of TVM 0.27 has no "
        "default schedule for matmul (DLight's CPU rules cover GEMV and reductions), so every kernel is a "
        "serial loop nest; fused attention is relax.op.nn.attention. It is a correctness baseline, not a "
        "speed claim.",
        "- tvm-tuned is what `graphspec build --target llvm --tune N` makes, for this CPU (`mcpu` = LLVM's "
        "name for the host; without it LLVM emits SSE2 and the best tuned matmuls stop near 35 GMAC/s): "
        "attention lowered as matmul / softmax / matmul (MetaSchedule cannot build candidates of "
        "nn.attention's TIR in TVM 0.27), then N trials: 4 on each light kernel (layer norm, softmax, "
        "transposes, gathers), the rest on the matmuls by MetaSchedule's gradient task scheduler. "
        "Weights are layout-free: a schedule reads them in its blocked layout, repacked once by "
        "`main_transform_params` when the weights are loaded (not timed). Matmuls with a row count "
        "MetaSchedule can only tile as 1 × n (ViT's 197 tokens) are padded to a multiple of 8 rows. "
        "The tuning time above is MetaSchedule's, on this machine.",
        "- onnxruntime (timm export): timm's own model, exported by torch.onnx.export in a venv of its own "
        "(benchmarks/peers/export_timm_onnx.py); its weights are timm's random ones, so its output is "
        "not compared, only its time. Both ONNX sessions flush denormals (backends/onnx.py `session`).",
        "- batch 8: eager, torch.compile and both ONNX graphs; TVM only with --batch8-trials N (a "
        "database of its own: the shapes differ).",
        "- torch.compile (first call) is inductor's compile time with its on-disk cache "
        "(/tmp/torchinductor_*) as left by earlier runs: a cold cache took 47.5 s for Swin-T b=1 in "
        "the first session.",
    ]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")
    print(f"wrote {path}")


def main() -> int:
    global THREADS
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--quick", action="store_true", help="few trials and rounds, no torch.compile")
    ap.add_argument("--specs", default=",".join(SPECS))
    ap.add_argument("--set", action="append", default=[], metavar="KEY=VALUE", help="override for every spec")
    ap.add_argument("--batch8", action="store_true", help="also batch 8 (no tvm-untuned there)")
    ap.add_argument("--batch8-trials", type=int, default=0, help="MetaSchedule trials at batch 8 [0: no tvm]")
    ap.add_argument("--trials", type=int, default=None, help="MetaSchedule trials per model [64; quick: 8]")
    ap.add_argument("--rounds", type=int, default=None, help="timed rounds at batch 1 [10; quick: 4]")
    ap.add_argument("--untuned-budget", type=float, default=30.0, help="seconds of timed tvm-untuned calls")
    ap.add_argument("--compile-budget", type=float, default=180.0, help="seconds for each torch.compile run")
    ap.add_argument("--no-torch-compile", dest="torch_compile", action="store_false")
    ap.add_argument("--tune-dir", default=None, help="keep (and reuse) the tuning databases here")
    ap.add_argument("--threads", type=int, default=THREADS, help="intra-op threads of every backend [2]")
    ap.add_argument("--timm-onnx", type=Path, default=None, help="dir of export_timm_onnx.py: timm's ONNX as a peer")
    ap.add_argument("--out", default=str(ROOT / "results" / "backends.md"))
    ap.add_argument("--child-torch-compile", nargs=3, metavar=("SPEC", "BATCH", "ROUNDS"), help=argparse.SUPPRESS)
    args = ap.parse_args()
    THREADS = args.threads
    SETS[:] = args.set
    # before torch / onnxruntime / the TVM runtime start their thread pools
    for var in ("GRAPHSPEC_BENCH_THREADS", "TVM_NUM_THREADS", "OMP_NUM_THREADS"):
        os.environ[var] = str(THREADS)
    if args.child_torch_compile:
        spec, batch, rounds = args.child_torch_compile
        torch_compile_child(spec, int(batch), int(rounds), tuple(args.set))
        return 0
    args.trials = args.trials if args.trials is not None else (8 if args.quick else 64)
    args.rounds = args.rounds or (4 if args.quick else 10)
    args.torch_compile = args.torch_compile and not args.quick
    args.no_untuned = False
    load_before = _load()
    t_start = time.perf_counter()
    results = []
    with tempfile.TemporaryDirectory() as tmp:
        tune_root = Path(args.tune_dir) if args.tune_dir else Path(tmp)
        for spec in args.specs.split(","):
            results.append(bench_model(spec, 1, args, tune_root))
        if args.batch8:
            args.no_untuned, trials = True, args.trials
            args.trials = args.batch8_trials
            for spec in args.specs.split(","):
                results.append(bench_model(spec, 8, args, tune_root / "b8"))
            args.trials = trials
    write(Path(args.out), results, args, load_before, time.perf_counter() - t_start)
    return 0


if __name__ == "__main__":
    sys.exit(main())
