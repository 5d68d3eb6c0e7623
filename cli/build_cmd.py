"""`graphspec build | run | verify`: compile a spec for a target, run a build, check backends.

    graphspec build swin_t --target onnx -o build/swin_t-onnx --batch dynamic
    graphspec build swin_t --target llvm --tune 64           # MetaSchedule, database kept in DIR/tuning
    graphspec build swin_t --target llvm --tune 64 --rpc 10.0.0.5:9190:xeon  # measured on RPC servers
    graphspec build swin_t --target cuda                     # needs nvcc; runs only on a GPU
    graphspec build swin_t --target cuda:sm_90 --dtype bf16  # Hopper kernels, bfloat16
    graphspec run build/swin_t-onnx --input random
    graphspec verify vit_b16 --targets torch,onnx,llvm --set L=2

A build directory is written atomically and carries a manifest.json (backends/build.py). Bad
targets, missing toolchains or devices, unwritable outputs, a directory that is not a build, a
model over the memory budget (backends/budget.py) and a damaged build directory given to `run`
exit with code 2 and leave no half-written directory; `verify` exits 1 when a backend disagrees
with the reference (the generated PyTorch module, run eagerly).
"""

from __future__ import annotations

import functools
import json
import sys
import time
from pathlib import Path

import click
import numpy as np
from graphspec.backends.build import TARGETS, BuildError
from graphspec.cli.main import OutputPath, UserError, user_errors
from graphspec.cli.passes_opts import apply_passes, pass_options

set_option = click.option("--set", "overrides", multiple=True, metavar="KEY=VALUE",
                          help="Override a variable or field of the spec (repeatable): --set M=12.")


def _batch(ctx, param, value):
    if value is None or value == "dynamic":
        return value
    try:
        b = int(value)
    except ValueError:
        b = 0
    if b < 1:
        raise click.BadParameter("use a positive integer or 'dynamic'")
    return b


def _tol(value: float) -> float:
    if not value >= 0 or value == float("inf"):  # nan fails every comparison: every backend a MISMATCH
        raise click.BadParameter(f"{value}: use a finite tolerance >= 0, e.g. 1e-4")
    return value


def _rpc(ctx, param, value):
    if value is None:
        return None
    from graphspec.backends.rpc import RPCError, parse

    try:
        return parse(value)
    except RPCError as e:
        raise click.BadParameter(str(e)) from None


def _target(ctx, param, value):
    """A target name, optionally with its cuda arch (cuda:sm_90); the arch is checked by build."""
    if value is not None and value.partition(":")[0] not in TARGETS:
        raise click.BadParameter(f"{value!r} is not one of {', '.join(TARGETS)} (cuda:sm_90 names the arch)")
    return value


dtype_option = click.option("--dtype", type=click.Choice(["fp32", "fp16", "bf16"]), default="fp32",
                            show_default=True,
                            help="Weights and activations; norm/softmax statistics and matmul "
                                 "accumulators stay float32, as in PyTorch. ONNX bf16 runs on GPUs only "
                                 "(onnxruntime's CPU provider lacks bf16 kernels).")

budget_option = click.option("--memory-budget", default=None, metavar="SIZE",
                             help="Refuse models whose weights and inputs need more (8G, 512MiB) "
                                  "[default: $GRAPHSPEC_MEMORY_BUDGET, else min(50% of RAM, 16 GiB)].")

batch_option = click.option("--batch", default=None, callback=_batch, metavar="B|dynamic",
                            help="Batch size (overrides the spec's), or 'dynamic' for a symbolic batch dim.")


def backend_errors(fn):
    """Backend user errors (toolchain, device, unsupported op) -> message and exit code 2."""

    @functools.wraps(fn)
    def wrapper(*args, **kwargs):
        from graphspec.backends.budget import BudgetError
        from graphspec.backends.manifest import ManifestError
        from graphspec.backends.onnx import ExportError
        from graphspec.backends.rpc import RPCError
        from graphspec.backends.torch import TorchTargetError
        from graphspec.backends.tvm import LowerError, ToolchainError

        try:
            return fn(*args, **kwargs)
        except (BuildError, ToolchainError, ExportError, LowerError, TorchTargetError,
                BudgetError, ManifestError, RPCError) as e:
            raise UserError(str(e)) from None

    return wrapper


def _progress(msg: str) -> None:
    click.echo(msg, err=True)


def _pass_opts(passes, disable_pass, print_after) -> dict:
    return {"passes": passes, "disable_pass": tuple(disable_pass), "print_after": tuple(print_after)}


def _apply(graph, passes=None, disable_pass=(), print_after=()):
    """Backends get the fused graph by default (fuse_attention, fuse_qkv, cse, dce)."""
    return apply_passes(graph, passes, disable_pass, print_after, default="default")


def _report_json(report) -> list:
    """A pass report as JSON rows (dataclass rows; anything else as text)."""
    import dataclasses

    rows = []
    for r in report or []:
        if dataclasses.is_dataclass(r):
            d = {f.name: getattr(r, f.name) for f in dataclasses.fields(r)}
            for k, v in list(d.items()):
                if isinstance(v, (list, tuple)) and k == "declined":
                    d[k] = len(v)
                elif not isinstance(v, (int, float, str, bool, type(None), list, tuple)):
                    d[k] = str(v)
            rows.append(d)
        else:
            rows.append(str(r))
    return rows


# -- build -------------------------------------------------------------------------------------
@click.command()
@click.argument("spec")
@click.option("--target", "-t", required=True, callback=_target, metavar="|".join(TARGETS),
              help="torch: model.py + weights; onnx: model.onnx; llvm / cuda: TVM model.so + weights. "
                   "cuda:ARCH names the GPU architecture (cuda:sm_90).")
@click.option("--arch", default=None, metavar="sm_XX",
              help="CUDA architecture of a cuda build's kernels [default: $GRAPHSPEC_CUDA_ARCH, else the "
                   "local GPU's (nvidia-smi), else sm_90 (H100/H200)].")
@dtype_option
@click.option("--tensor-cores/--no-tensor-cores", "tensor_cores", default=None,
              help="cuda --dtype bf16, untuned: matmuls on tensor cores (graphspec's bf16 wmma schedule; the "
                   "default) or DLight's CUDA-core loops (--no-tensor-cores). fp16 uses DLight's own.")
@click.option("-o", "--output", "out", type=OutputPath(file_okay=False), default=None,
              help="Build directory [default: build/<spec name, reduced to A-Za-z0-9._->-<target>]. "
                   "A directory that is not a graphspec build is not replaced without --force.")
@set_option
@pass_options
@click.option("--tune", type=click.IntRange(min=0), default=0, metavar="N",
              help="MetaSchedule trials (llvm); the database is reused by later builds.")
@click.option("--tune-dir", type=OutputPath(file_okay=False), default=None,
              help="Where the tuning database lives [default: <output>/tuning, carried across rebuilds].")
@click.option("--rpc", default=None, callback=_rpc, metavar="HOST:PORT:KEY",
              help="With --tune: measure candidates on the RPC servers registered with KEY at the TVM "
                   "tracker HOST:PORT (built here); the tracker is probed first.")
@batch_option
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True,
              help="Seed of the random weights (numpy's: a non-negative integer).")
@click.option("--force", is_flag=True, help="Rebuild even when the cache says the build is up to date, "
              "and replace an output directory that is not a graphspec build.")
@budget_option
@user_errors
@backend_errors
def build(spec, target, arch, dtype, tensor_cores, out, overrides, passes, disable_pass, print_after, tune, tune_dir, rpc,
          batch, seed, force, memory_budget):
    """Compile SPEC for one target into a build directory (artifact + manifest.json).

    The directory is replaced in one atomic step; a second build of the same directory while
    one runs exits 2 at once (it does not wait), naming the running build's pid."""
    from graphspec.backends import build as b
    from graphspec.backends.rpc import measured_on

    if rpc and not tune:
        raise UserError(f"--rpc {rpc} measures tuning candidates: give --tune N too")
    t0 = time.perf_counter()
    opts = _pass_opts(passes, disable_pass, print_after)

    def apply(graph, **o):
        g, rep = _apply(graph, **o)
        return g, _report_json(rep)

    with measured_on(rpc):  # metaschedule.tune() measures on the tracker's servers
        m = b.build(spec, target, out, overrides=tuple(overrides), pass_opts=opts, apply_passes=apply,
                    tune=tune, batch=batch, seed=seed, tune_dir=tune_dir, force=force,
                    memory_budget=memory_budget, log=_progress, dtype=dtype, arch=arch,
                    tensor_cores=tensor_cores)
    target = m["target"]
    where = out or b.default_dir(m["spec"]["name"], target)
    if m["cache"].get("hit"):
        click.echo(f"cached: {where} is up to date (cache key {m['cache']['key']}); nothing rebuilt")
        return
    extra = []
    if "onnx" in m:
        extra.append(f"{m['onnx']['nodes']} ONNX nodes")
    if m.get("tvm", {}).get("cuda_kernels"):
        extra.append(f"{m['tvm']['cuda_kernels']} CUDA kernels for {m.get('arch')} "
                     f"(PTX .target {', '.join(m['tvm'].get('ptx_targets') or ['?'])})")
    if m.get("dtype", "fp32") != "fp32":
        extra.append(m["dtype"])
    if "bf16_tensor_core_matmuls" in m.get("tvm", {}):
        extra.append(f"{m['tvm']['bf16_tensor_core_matmuls']} matmul kernels on tensor cores")
    if "tuning" in m:
        t = m["tuning"]
        extra.append(f"tuning: {'reused ' + str(t['records']) + ' records, no new trials' if t.get('reused') else str(t.get('new_trials')) + ' trials'}"
                     f", {t.get('applied')} of {t.get('prim_funcs')} kernels tuned")
        if t.get("runner", {}).get("kind") == "rpc" and not t.get("reused"):
            extra.append(f"measured on {t['runner']['free']} RPC server(s) with key {t['runner']['key']!r} "
                         f"at {t['runner']['tracker']}")
    extra.append(f"{m['params']:,} params, {m['macs'] / 1e9:.3g} GMACs")
    click.echo(f"built {m['spec']['name']} for {target} -> {where} ({'; '.join(extra)}) "
               f"in {time.perf_counter() - t0:.1f}s")
    if target == "llvm" and not tune:
        click.echo("note: an untuned llvm build is a correctness baseline (serial scalar loops, "
                   "e.g. 8.4 s per Swin-T image on a 2-core machine); `--tune N` (MetaSchedule "
                   "trials, e.g. --tune 1100) is what makes it fast", err=True)


# -- run -----------------------------------------------------------------------------------------
@click.command()
@click.argument("build_dir", type=click.Path(file_okay=False))
@click.option("--input", "input_", default="random", show_default=True, metavar="random|FILE.npy|FILE.npz",
              help="Random inputs from the manifest, a .npy for a single input, or a .npz by input name.")
@click.option("--batch", type=click.IntRange(min=1), default=None, help="Batch of random inputs (dynamic builds).")
@click.option("--repeat", type=click.IntRange(min=0), default=3, show_default=True, help="Timed runs after a warm-up.")
@click.option("-o", "--output", "out", type=OutputPath(dir_okay=False), default=None,
              help="Save the outputs (.npy for one output, .npz otherwise).")
@budget_option
@user_errors
@backend_errors
def run(build_dir, input_, batch, repeat, out, memory_budget):
    """Run a build directory once on an input and print its outputs and latency.

    A torch or llvm build directory is code (model.py, model.so): run only ones you trust.
    Every artifact is checked against the sha256 in manifest.json before it is loaded."""
    from graphspec.backends import build as b
    from graphspec.backends import manifest as mf
    from graphspec.backends.targets import timed

    m = mf.read(Path(build_dir))
    if batch is not None and m.get("batch") != "dynamic" and batch != m.get("batch"):
        raise UserError(f"{build_dir} was built for batch {m.get('batch')}; rebuild with --batch dynamic")
    manifest, runner = b.load(build_dir, batch, memory_budget)
    inputs = _inputs(manifest, input_, batch, memory_budget)
    outs, secs = timed(runner, inputs, repeat=max(repeat, 1))
    click.echo(f"{manifest['spec']['name']} [{manifest['target']}] "
               f"inputs: {', '.join(f'{k} {list(v.shape)}' for k, v in inputs.items())}")
    for name, o in zip(manifest["outputs"], outs, strict=False):
        click.echo(f"  {name}: {o.dtype}{list(o.shape)} mean {float(o.mean()):.6g} std {float(o.std()):.6g}"
                   + (f" argmax {o.reshape(o.shape[0], -1).argmax(-1).tolist()[:8]}" if o.ndim == 2 else ""))
    click.echo(f"  latency: {secs * 1e3:.2f} ms (median of {max(repeat, 1)})")
    if out:
        from graphspec.io import atomic_write

        buf = __import__("io").BytesIO()
        if len(outs) == 1 and out.endswith(".npy"):
            np.save(buf, outs[0])
        else:
            np.savez(buf, **dict(zip(manifest["outputs"], outs, strict=False)))
        atomic_write(out, buf.getvalue())
        click.echo(f"  saved -> {out}")


def _inputs(manifest, input_: str, batch, memory_budget=None) -> dict:
    from graphspec.backends.build import random_inputs_for

    if input_ == "random":
        return random_inputs_for(manifest, batch)
    path = Path(input_)
    if not path.exists():
        raise UserError(f"--input {input_}: no such file; use 'random', a .npy or a .npz")
    if not path.is_file():
        raise UserError(f"--input {input_}: not a regular file; use 'random', a .npy or a .npz")
    names = [i["name"] for i in manifest["inputs"]]
    arrays = _read_arrays(path, input_, names, manifest, memory_budget)
    for i in manifest["inputs"]:
        arrays[i["name"]] = _checked_input(arrays[i["name"]], i, manifest, input_)
    return arrays


def _read_arrays(path: Path, input_: str, names: list[str], manifest, memory_budget) -> dict:
    """The arrays of a .npy (one input) or .npz (by input name), never a pickle; each header's
    shape is checked against the file and the memory budget before its data is read."""
    import zipfile

    from graphspec.backends import budget

    def read(f, size: int, what: str) -> np.ndarray:
        fmt = np.lib.format
        try:
            version = fmt.read_magic(f)
            header = fmt.read_array_header_1_0 if version == (1, 0) else fmt.read_array_header_2_0
            shape, fortran, dtype = header(f)
        except (OSError, ValueError, SyntaxError) as e:
            raise UserError(f"--input {input_}: {what} is not a .npy array ({e})") from None
        if dtype.hasobject or dtype.kind not in "biuf":
            raise UserError(f"--input {input_}: {what} holds {dtype} values; give numbers (int64 token ids, "
                            "float32 images)")
        count = int(np.prod(shape, dtype=object))
        if count * dtype.itemsize > size:
            raise UserError(f"--input {input_}: {what}'s header claims {list(shape)} {dtype} "
                            f"({count * dtype.itemsize:,} bytes), more than the file's {size:,} bytes: "
                            "the file is truncated or damaged")
        budget.check({"input": count * dtype.itemsize}, f"reading --input {input_}", memory_budget)
        data = f.read(count * dtype.itemsize)
        if len(data) != count * dtype.itemsize:
            raise UserError(f"--input {input_}: {what} is truncated ({len(data):,} of "
                            f"{count * dtype.itemsize:,} bytes of data)")
        return np.frombuffer(data, dtype, count).reshape(shape, order="F" if fortran else "C")

    try:
        with open(path, "rb") as f:
            magic = f.read(4)
            f.seek(0)
            if magic != b"PK\x03\x04":
                if len(names) != 1:
                    raise UserError(f"the model takes {len(names)} inputs ({', '.join(names)}): give a .npz with "
                                    "those keys")
                return {names[0]: read(f, path.stat().st_size, path.name)}
            with zipfile.ZipFile(f) as z:
                have = {n[:-4] if n.endswith(".npy") else n: n for n in z.namelist()}
                missing = [n for n in names if n not in have]
                if missing:
                    raise UserError(f"--input {input_} lacks {', '.join(missing)} (has {', '.join(have)})")
                out = {}
                for n in names:
                    info = z.getinfo(have[n])
                    with z.open(info) as m:
                        out[n] = read(m, info.file_size, n)
                return out
    except (OSError, zipfile.BadZipFile, EOFError) as e:
        raise UserError(f"--input {input_}: not a .npy/.npz file ({e})") from None


def _checked_input(a: np.ndarray, i: dict, manifest, input_: str) -> np.ndarray:
    """One input as the build takes it: its shape (and batch, unless dynamic), token ids as
    integers in [0, vocab), images as finite-or-not float32."""
    want = i["shape"][1:]
    if a.ndim != len(i["shape"]) or list(a.shape[1:]) != want or a.shape[0] < 1:
        raise UserError(f"input {i['name']}: shape {list(a.shape)}, the build expects [B, {', '.join(map(str, want))}]"
                        " with B >= 1")
    if manifest.get("batch") != "dynamic" and a.shape[0] != manifest.get("batch"):
        raise UserError(f"input {i['name']}: batch {a.shape[0]}, but the build was made for batch "
                        f"{manifest.get('batch')}; rebuild with --batch dynamic (or --batch {a.shape[0]})")
    if i["dtype"] != "i64":
        return a.astype(np.float32)
    if a.dtype.kind not in "iub":
        raise UserError(f"--input {input_}: {i['name']} holds token ids, and its values are {a.dtype}; "
                        "give integers (int64)")
    vocab = i.get("vocab")
    lo, hi = int(a.min()), int(a.max())
    if lo < 0 or (vocab is not None and hi >= vocab):
        bound = f"the model's vocabulary is [0, {vocab})" if vocab is not None else "use ids >= 0"
        raise UserError(f"--input {input_}: {i['name']} holds token ids from {lo} to {hi}; {bound}")
    return a.astype(np.int64)


# -- verify ------------------------------------------------------------------------------------
@click.command()
@click.argument("spec")
@click.option("--targets", default="torch,onnx,llvm", show_default=True, metavar="T1,T2,...",
              help=f"Comma-separated subset of {','.join(TARGETS)}.")
@set_option
@pass_options
@batch_option
@click.option("--tol", type=float, default=1e-4, show_default=True, callback=lambda c, p, v: _tol(v),
              help="Max abs and relative error allowed.")
@click.option("--seed", type=click.IntRange(min=0), default=0, show_default=True)
@click.option("--json", "as_json", is_flag=True, help="Print the results as JSON.")
@budget_option
@user_errors
@backend_errors
def verify(spec, targets, overrides, passes, disable_pass, print_after, batch, tol, seed, as_json,
           memory_budget):
    """Run one random input through each backend; print errors and latency against the reference:
    the generated PyTorch module run eagerly (graphspec's IR interpreter where codegen is absent)."""
    from graphspec.backends import budget
    from graphspec.backends import build as b
    from graphspec.backends import targets as tg
    from graphspec.backends.torch import codegen_available, run_eager
    from graphspec.backends.tvm import has_cuda_device
    from graphspec.backends.weights import random_inputs, random_params

    names = [t.strip() for t in targets.split(",") if t.strip()]
    bad = [t for t in names if t not in TARGETS]
    if bad or not names:
        raise UserError(f"unknown target(s) {', '.join(bad) or '(none)'}; choose from {', '.join(TARGETS)}")
    for t in names:
        b.check_target(t)
    if "cuda" in names and not has_cuda_device():
        raise UserError("verify runs every target, and the cuda target needs a CUDA GPU, which this machine "
                        "lacks; drop cuda from --targets (`graphspec build --target cuda` still works)")
    p = b.prepare(spec, tuple(overrides), _pass_opts(passes, disable_pass, print_after), batch,
                  lambda g, **o: _apply(g, **o))
    g = p.graph
    budget.check(budget.graph_bytes(g), f"verifying {p.model.spec.name!r}", memory_budget)
    reference = "generated PyTorch module (eager)" if codegen_available() else "graphspec IR interpreter"
    params = random_params(g, seed)
    x = random_inputs(g, seed=seed + 1)
    ref, ref_s = tg.timed(lambda i: run_eager(g, params, i, spec=p.model.spec), x)
    rows = [{"target": "eager", "max_abs": 0.0, "rel": 0.0, "latency_ms": ref_s * 1e3, "ok": True}]
    for t in names:
        _progress(f"[{t}] compiling ...")
        c = tg.compile(g, params, t, dynamic_batch=p.dynamic_batch, spec=p.model.spec, log=None)
        got, secs = tg.timed(c.run, x)
        err = max(float(np.abs(a - r).max()) for a, r in zip(got, ref, strict=True))
        rel = max(float(np.abs(a - r).max()) / max(float(np.abs(r).max()), 1e-12) for a, r in zip(got, ref, strict=True))
        rows.append({"target": t, "max_abs": err, "rel": rel, "latency_ms": secs * 1e3,
                     "ok": err <= tol and rel <= tol})
    if as_json:
        click.echo(json.dumps({"spec": p.model.spec.name, "tol": tol, "reference": reference,
                               "results": rows}, indent=1))
    else:
        click.echo(f"{p.model.spec.name}: batch {x[g.inputs[0].name].shape[0]}, "
                   f"{len(params)} parameter tensors, reference: {reference}, tol {tol:g}")
        click.echo(f"  {'target':8s} {'max-abs':>9s} {'rel':>9s} {'latency':>11s} {'vs eager':>9s}  status")
        for r in rows:
            ratio = rows[0]["latency_ms"] / r["latency_ms"] if r["latency_ms"] else float("nan")
            status = "reference" if r["target"] == "eager" else ("ok" if r["ok"] else "MISMATCH")
            click.echo(f"  {r['target']:8s} {r['max_abs']:9.2e} {r['rel']:9.2e} {r['latency_ms']:9.2f}ms "
                       f"{ratio:8.2f}x  {status}")
    if not all(r["ok"] for r in rows):
        sys.exit(1)


COMMANDS = [build, run, verify]
