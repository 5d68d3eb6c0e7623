"""The half of the GPU check that runs on the device: verify, then measure, in one process.

    python benchmarks/gpu/run.py --pack build/gpu_pack --out "$OUT"     # (device.sh does this)

Installs nothing from a registry: the carried apache-tvm-ffi wheel goes in with `pip --no-index`,
the TVM runtime is the pack's tvm_runtime/tvm, imported with TVM_USE_RUNTIME_LIB=1 (no compiler
library). Needs only numpy and torch besides; graphspec itself is not imported here.

For each build (model x dtype): the weights are drawn from the build's seed exactly as
graphspec.backends.weights.random_params draws them (tests/test_gpu_prepare.py checks that);
the reference is graphspec's generated PyTorch module with those weights, on the GPU, in the
build's dtype (fp32: TF32 off). TVM's library must match it: fp32 within 1e-4 of max |ref|,
bf16 within 4e-2 of the fp32 module's output (and the bf16 module's own error is printed beside
it). Then images/s at batch 64 and latency at batch 1 for TVM (DLight), PyTorch eager,
torch.compile and onnxruntime's CUDA provider (the generated module exported by torch.onnx)
where they work, interleaved round by round, timed with CUDA events. MFU = 2 x graphspec's MACs
per image x images/s / peak, with NVIDIA's H200 dense peaks: 989 TFLOP/s bf16 tensor core,
67 TFLOP/s fp32 (no tensor cores). The markdown goes to OUT/gpu.md, raw rows to OUT/gpu.json.
"""

from __future__ import annotations

import argparse
import ctypes
import glob
import hashlib
import json
import lzma
import os
import subprocess
import sys
import time
import traceback
from pathlib import Path

import numpy as np

PEAK = {"bf16": 989e12, "fp16": 989e12, "fp32": 67e12}  # NVIDIA H200 datasheet, dense (bf16 1,979 TFLOPS is with sparsity)
TOL = {"fp32": 1e-4, "fp16": 1e-2, "bf16": 4e-2}
T0 = time.perf_counter()


def log(msg: str) -> None:
    print(f"[{time.perf_counter() - T0:6.1f}s] {msg}", flush=True)


# -- weights: graphspec.backends.weights.random_params, from the recipe ------------------------
def random_params(recipe: list, seed: int) -> dict[str, np.ndarray]:
    """The same arrays graphspec.backends.weights.random_params(graph, seed) returns."""
    rng = np.random.default_rng(seed)
    out = {}
    for name, shape in recipe:
        shape = tuple(shape)
        leaf = name.rsplit(".", 1)[-1]
        if leaf == "running_var":
            a = rng.uniform(0.5, 1.5, shape)
        elif leaf == "bias":
            a = rng.normal(0.0, 0.02, shape)
        elif leaf == "weight" and len(shape) == 1:
            a = 1.0 + rng.normal(0.0, 0.1, shape)
        else:
            a = rng.normal(0.0, 0.02 if len(shape) > 1 else 0.1, shape)
        out[name] = a.astype(np.float32)
    return out


# -- the TVM runtime, without the compiler -------------------------------------------------------
def setup_tvm(pack: Path, work: Path, device: str = "cuda") -> dict:
    """Install the carried wheel (unless tvm_ffi is there already), put the pack's runtime-only
    tvm first on sys.path, load CUDA's sidecar library; returns what it used."""
    import importlib.util

    site = work / "site"
    if importlib.util.find_spec("tvm_ffi") is None and not (site / "tvm_ffi").exists():
        wheel = next(pack.glob("apache_tvm_ffi-*.whl"))
        subprocess.run([sys.executable, "-m", "pip", "install", "--no-index", "--no-deps", "--quiet",
                        "--target", str(site), str(wheel)], check=True)
    sys.path[:0] = [str(pack / "tvm_runtime"), str(site)]  # the runtime-only tvm package, tvm_ffi
    os.environ["TVM_USE_RUNTIME_LIB"] = "1"
    used = {"cudart": load_cudart(pack) if device == "cuda" else None}
    import tvm  # noqa: F401
    import tvm_ffi

    if device == "cuda":  # runtime-only mode skips the backends' sidecar libraries
        ctypes.CDLL(str(pack / "tvm_runtime" / "tvm" / "lib" / "libtvm_runtime_cuda.so"), mode=ctypes.RTLD_GLOBAL)
    used["tvm_file"] = tvm.__file__
    used["tvm_runtime_only"] = bool(getattr(tvm, "_RUNTIME_ONLY", False))
    used["tvm_ffi"] = getattr(tvm_ffi, "__version__", "?")
    return used


def load_cudart(pack: Path) -> str:
    """libcudart.so.13 (libtvm_runtime_cuda.so's DT_NEEDED): torch's own if it ships one, else the pack's."""
    import torch

    roots = [Path(torch.__file__).parents[1] / "nvidia", Path(torch.__file__).parent / "lib"]
    found = [p for r in roots for p in glob.glob(str(r / "**" / "libcudart.so.13*"), recursive=True)]
    path = found[0] if found else str(pack / "libcudart.so.13")
    ctypes.CDLL(path, mode=ctypes.RTLD_GLOBAL)
    return path


def use_kernels(kernels: dict[str, bytes]) -> None:
    """TVM compiles a library's CUDA source at load through this callback: hand it the cubin
    prepare.py's nvcc made from that very source (backends/cuda.py, [CUDA kernels ahead of time])."""
    import tvm_ffi

    def lookup(code, *_):
        key = hashlib.sha256(str(code).encode()).hexdigest()
        if key in kernels:
            return kernels[key]
        if len(kernels) == 1:  # one library, one cuda module: its source as TVM hands it differs in bytes
            log(f"warning: CUDA source {key[:12]} is not the one the cubin was made from; using that cubin")
            return next(iter(kernels.values()))
        raise RuntimeError(f"no precompiled kernels for CUDA source {key[:12]}")

    tvm_ffi.register_global_func("tvm_callback_cuda_compile", lookup, override=True)


class TVMModel:
    """A graphspec TVM library on `device` ("cuda", or "cpu" for an llvm build in the dry run),
    its weights transformed once; called with a torch tensor, returns one (DLPack both ways)."""

    def __init__(self, d: Path, info: dict, params: dict, work: Path, torch_dtype, device: str = "cuda"):
        import torch
        import tvm
        from tvm.runtime import vm as rvm

        lib = work / f"{d.name}.so"
        lib.write_bytes(lzma.decompress((d / "model.so.xz").read_bytes()))
        if info["tvm"].get("kernel_sources"):
            use_kernels({info["tvm"]["kernel_sources"][0]: (d / "model.cubin").read_bytes()})
        self.dev = tvm.cuda(0) if device == "cuda" else tvm.cpu(0)
        self.vm = rvm.VirtualMachine(tvm.runtime.load_module(str(lib)), self.dev)
        ws = [self._tvm(torch.from_numpy(params[n]).to(device, torch_dtype)) for n in info["tvm"]["params"]]
        self.weights = list(self.vm["main_transform_params"](ws))
        self.main = self.vm["main"]

    def _tvm(self, t):
        """A TVM tensor on the torch tensor's memory (DLPack), or a copy where TVM's 64-byte
        alignment rule is not met (a CPU tensor, a view)."""
        import tvm

        t = t.contiguous()
        if t.data_ptr() % 64 == 0:
            return tvm.runtime.from_dlpack(t)
        a = tvm.runtime.empty(tuple(t.shape), str(t.dtype).replace("torch.", ""), self.dev)
        __import__("torch").from_dlpack(a).copy_(t)
        return a

    def __call__(self, x):
        import torch

        out = self.main(self._tvm(x), *self.weights)
        return torch.from_dlpack(out[0] if isinstance(out, (list, tuple)) else out)


def reference(d: Path, info: dict, params: dict, torch_dtype, device: str = "cuda"):
    """The generated module with the build's weights, on `device`, in `torch_dtype`."""
    import importlib.util

    import torch

    spec = importlib.util.spec_from_file_location(f"gs_{d.name.replace('-', '_')}", d / "model.py")
    mod = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = mod
    spec.loader.exec_module(mod)
    net = getattr(mod, info["class"])()
    missing, unexpected = net.load_state_dict({k: torch.from_numpy(v) for k, v in params.items()}, strict=False)
    buffers = dict(net.named_buffers())
    if [k for k in missing if k not in buffers] or unexpected:
        raise RuntimeError(f"state dict mismatch: {missing[:3]} {unexpected[:3]}")
    return net.eval().to(device, torch_dtype)


def time_rounds(fns: dict, x, rounds: int, iters: int) -> dict[str, float]:
    """Median ms per call of each fn, interleaved: every round times each fn `iters` times
    (CUDA events on the GPU; the CPU clock in the dry run)."""
    import torch

    per: dict[str, list[float]] = {k: [] for k in fns}
    for _ in range(rounds):
        for k, f in fns.items():
            if x.is_cuda:
                start, end = torch.cuda.Event(enable_timing=True), torch.cuda.Event(enable_timing=True)
                start.record()
                for _ in range(iters):
                    f(x)
                end.record()
                end.synchronize()
                per[k].append(start.elapsed_time(end) / iters)
            else:
                t0 = time.perf_counter()
                for _ in range(iters):
                    f(x)
                per[k].append((time.perf_counter() - t0) * 1e3 / iters)
    return {k: float(np.median(v)) for k, v in per.items()}


def onnx_runner(net, x, work: Path, name: str):
    """onnxruntime's CUDA provider on the generated module exported by torch.onnx, else None + why."""
    import onnxruntime as ort
    import torch

    if "CUDAExecutionProvider" not in ort.get_available_providers():
        return None, "onnxruntime has no CUDAExecutionProvider here"
    types = {torch.float32: np.float32, torch.float16: np.float16}
    if x.dtype not in types:  # checked before the export, which costs device time
        return None, f"not measured: io_binding takes a numpy element type and numpy has no {x.dtype}"
    path = work / f"{name}.onnx"
    torch.onnx.export(net, (x,), str(path), input_names=["x"], output_names=["y"], opset_version=17,
                      dynamic_axes={"x": {0: "b"}}, dynamo=False)
    sess = ort.InferenceSession(str(path), providers=["CUDAExecutionProvider"])

    def run(t):
        b = sess.io_binding()
        t = t.contiguous()
        b.bind_input("x", "cuda", 0, types[t.dtype], list(t.shape), t.data_ptr())
        b.bind_output("y", "cuda")
        sess.run_with_iobinding(b)
        return b

    return run, None


def main(argv=None) -> int:
    ap = argparse.ArgumentParser()
    ap.add_argument("--pack", default="build/gpu_pack")
    ap.add_argument("--out", default=os.environ.get("OUT", "out"))
    ap.add_argument("--work", default="/tmp/graphspec_gpu")
    ap.add_argument("--budget", type=float, default=420.0, help="seconds; later measurements are skipped")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--batches", default="64,1", help="throughput batch, latency batch")
    ap.add_argument("--device", default="cuda", choices=["cuda", "cpu"],
                    help="cpu: the dry run on llvm builds (tests/test_gpu_prepare.py)")
    ap.add_argument("--compile-dtypes", default="bf16", help="dtypes measured with torch.compile too "
                    "(each compile of Swin-T/ViT-B costs ~a minute per batch size)")
    a = ap.parse_args(argv)
    pack, out, work = Path(a.pack), Path(a.out), Path(a.work)
    out.mkdir(parents=True, exist_ok=True)
    work.mkdir(parents=True, exist_ok=True)
    import torch

    torch.backends.cuda.matmul.allow_tf32 = False
    torch.backends.cudnn.allow_tf32 = False
    index = json.loads((pack / "index.json").read_text())
    dev = a.device
    gpu = dev == "cuda"
    env = {"gpu": torch.cuda.get_device_name(0) if gpu else "cpu (dry run)", "torch": torch.__version__,
           "cuda": torch.version.cuda,
           "driver": torch._C._cuda_getDriverVersion() if gpu and hasattr(torch._C, "_cuda_getDriverVersion") else None,
           "python": sys.version.split()[0]}
    rows, checks, notes = [], [], []
    try:
        env.update(setup_tvm(pack, work, dev))
    except Exception as e:  # noqa: BLE001  (report and go on with the torch rows)
        notes.append(f"TVM runtime setup failed: {type(e).__name__}: {e}")
        traceback.print_exc()
    log(f"env {env}")
    groups: dict[tuple, list] = {}  # (model, dtype) -> its builds, one per batch (or one dynamic)
    for key in index["builds"]:
        info = json.loads((pack / key / "build.json").read_text())
        groups.setdefault((info["spec"], info["dtype"]), []).append((key, info))
    big, small = (int(v) for v in a.batches.split(","))
    order = {"bf16": 0, "fp16": 1, "fp32": 2}  # the goal's rows first, should the budget run out
    todo = sorted(groups, key=lambda g: (order.get(g[1], 3), g[0] != "swin_t"))
    for i, (spec, dt) in enumerate(todo):
        try:
            measure_group(spec, dt, groups[spec, dt], pack, work, dev, env, a, rows, checks, notes, (big, small))
        except Exception as e:  # noqa: BLE001  (one group's failure must not cost the others' figures)
            notes.append(f"{spec} {dt}: failed: {type(e).__name__}: {str(e).splitlines()[0][:300] if str(e) else ''}")
            checks.append({"build": f"{spec}-{dt}", "batch": 0, "backend": "(group)", "rel_vs_fp32": float("nan"),
                           "ok": False})
            traceback.print_exc()
        if gpu:
            torch.cuda.empty_cache()
        # written after every group, so that a run stopped by device.sh's timeout keeps what it measured
        left = [f"{m} {d}" for m, d in todo[i + 1:]]
        write(out, env, index, rows, checks,
              notes + ([f"incomplete: the run stopped before {', '.join(left)}"] if left else []), a)
    if not todo:
        write(out, env, index, rows, checks, notes + ["the pack has no builds"], a)
    print((out / "gpu.md").read_text())
    return 0 if all(c.get("ok", True) for c in checks) else 1


def measure_group(spec, dt, builds, pack, work, dev, env, a, rows, checks, notes, batches) -> None:
    """Verify and time one model in one dtype: each TVM build at its batch (a dynamic build at
    both), against eager, torch.compile and onnxruntime at the same batch, interleaved."""
    import torch

    gpu = dev == "cuda"
    key0, info0 = builds[0]
    d0 = pack / key0
    tdt = torch.bfloat16 if dt == "bf16" else torch.float16 if dt == "fp16" else torch.float32
    params = random_params(info0["weights"], info0["seed"])
    shape = info0["inputs"][0]["shape"]
    ref32 = reference(d0, info0, params, torch.float32, dev)
    eager = reference(d0, info0, params, tdt, dev)
    common = {"eager": lambda t, m=eager: m(t)}
    if dt in a.compile_dtypes.split(",") and time.perf_counter() - T0 < a.budget * 0.6:
        common["torch.compile"] = torch.compile(eager, dynamic=False)  # compiled per batch at warm-up
    try:
        r, why = onnx_runner(eager, torch.zeros(1, *shape, device=dev, dtype=tdt), work, f"{spec}-{dt}") \
            if gpu else (None, "the dry run measures no onnxruntime")
        if r:
            common["onnxruntime"] = r
        else:
            notes.append(f"{spec} {dt}: onnxruntime: {why}")
    except Exception as e:  # noqa: BLE001
        notes.append(f"{spec} {dt}: onnxruntime failed: {type(e).__name__}: {str(e).splitlines()[0][:200]}")
    tvms: dict[int, list] = {}  # batch -> [(build key, row label, TVMModel or None)]
    for key, info in builds:
        at = list(batches) if info.get("batch", "dynamic") == "dynamic" else [int(info["batch"])]
        tv = None
        if "tvm_runtime_only" in env:
            try:
                tv = TVMModel(pack / key, info, params, work, tdt, dev)
            except Exception as e:  # noqa: BLE001
                notes.append(f"{key}: TVM failed to load: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                traceback.print_exc()
        for batch in at:
            tvms.setdefault(batch, []).append((key, info.get("label", "tvm"), tv))
    for batch, candidates in tvms.items():
        if time.perf_counter() - T0 > a.budget:
            notes.append(f"{spec} {dt} batch {batch}: skipped (time budget {a.budget:.0f}s)")
            continue
        x32 = torch.from_numpy(np.random.default_rng(batch).standard_normal((batch, *shape))
                               .astype(np.float32)).to(dev)
        x = x32.to(tdt)
        with torch.no_grad():
            y32 = ref32(x32).float()
            y_eager = eager(x).float()
        scale = float(y32.abs().max())
        checks.append({"build": f"{spec}-{dt}", "batch": batch, "backend": "eager",
                       "rel_vs_fp32": float((y_eager - y32).abs().max()) / scale})
        fns = dict(common)
        for key, label, tv in candidates:
            if tv is None:
                continue
            try:
                y = tv(x).float()
                rel = float((y - y32).abs().max()) / scale
                ok = rel <= TOL[dt]
                checks.append({"build": key, "batch": batch, "backend": label, "rel_vs_fp32": rel,
                               "rel_vs_eager": float((y - y_eager).abs().max()) / scale, "ok": ok})
                log(f"{key} b{batch}: {label} vs fp32 module rel {rel:.2e} ({'ok' if ok else 'MISMATCH'})")
                if ok:
                    fns[label] = tv
            except Exception as e:  # noqa: BLE001
                notes.append(f"{key} b{batch}: TVM failed: {type(e).__name__}: {str(e).splitlines()[0][:300]}")
                traceback.print_exc()
        with torch.no_grad():
            live = {}
            for k, f in fns.items():  # warm-up (and compile) each; drop what fails
                try:
                    f(x)
                    f(x)
                    live[k] = f
                except Exception as e:  # noqa: BLE001
                    notes.append(f"{spec} {dt} batch {batch} {k}: {type(e).__name__}: "
                                 f"{str(e).splitlines()[0][:200]}")
            if gpu:
                torch.cuda.synchronize()
            ms = time_rounds(live, x, a.rounds, 10 if batch > 8 else 50)
        for k, v in ms.items():
            ips = batch / (v / 1e3)
            mfu = 2 * info0["macs_per_image"] * ips / PEAK.get(dt, PEAK["fp32"])
            rows.append({"model": spec, "dtype": dt, "batch": batch, "backend": k, "ms": v,
                         "images_s": ips, "mfu": mfu})
            log(f"{spec} {dt} b{batch} {k:14s} {v:8.3f} ms  {ips:10.1f} img/s  MFU {mfu:.2%}")


def write(out: Path, env, index, rows, checks, notes, a) -> None:
    (out / "gpu.json").write_text(json.dumps({"env": env, "rows": rows, "checks": checks, "notes": notes},
                                             indent=1) + "\n")
    lines = ["# GPU check: TVM (DLight) vs PyTorch eager, torch.compile, onnxruntime CUDA", "",
             f"Measured by `bash benchmarks/gpu/device.sh` on {env.get('gpu')} (torch {env.get('torch')}, "
             f"CUDA {env.get('cuda')}, driver {env.get('driver')}); pack built with arch {index['arch']} "
             f"at {index['created']}. One process, backends interleaved over {a.rounds} rounds, CUDA events; "
             "MFU against the H200's dense peaks (bf16 989 TFLOP/s, fp32 67 TFLOP/s).", "",
             f"Command: `python benchmarks/gpu/run.py {' '.join(sys.argv[1:])}`", "",
             "## Verification (max |err| / max |fp32 reference| on one seeded input)", "",
             "| build | batch | backend | vs fp32 module | vs same-dtype eager | status |",
             "| --- | ---: | --- | ---: | ---: | --- |"]
    for c in checks:
        st = "" if "ok" not in c else "ok" if c["ok"] else "FAILED" if c["backend"] == "(group)" else "MISMATCH"
        lines.append(f"| {c['build']} | {c['batch']} | {c['backend']} | {c['rel_vs_fp32']:.2e} | "
                     f"{c.get('rel_vs_eager', float('nan')):.2e} | {st} |")
    lines += ["", "## Speed", "", "| model | dtype | batch | backend | ms | images/s | MFU |",
              "| --- | --- | ---: | --- | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['model']} | {r['dtype']} | {r['batch']} | {r['backend']} | {r['ms']:.3f} | "
                     f"{r['images_s']:,.0f} | {r['mfu']:.2%} |")
    if notes:
        lines += ["", "## Notes", ""] + [f"- {n}" for n in notes]
    (out / "gpu.md").write_text("\n".join(lines) + "\n")


if __name__ == "__main__":
    sys.exit(main())
