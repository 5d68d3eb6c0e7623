"""One graph, four targets: compile in memory, run, save to and load from a build directory.

`compile(graph, params, target)` returns a `Compiled`: `run(inputs)` gives the outputs as
numpy arrays, `save(dir)` writes the artifact files and `info` goes into the manifest. Used
by `graphspec build`, `graphspec verify` and benchmarks/bench_backends.py alike.

    target  artifact                         runs here
    torch   model.py + weights.safetensors   yes (generated nn.Module)
    onnx    model.onnx (weights inside)      yes (onnxruntime, CPU)
    llvm    model.so + weights.safetensors   yes (TVM Relax VM)
    cuda    model.so + weights.safetensors   needs an NVIDIA GPU; builds with nvcc alone

`load(dir, manifest)` reads each artifact once, checks it against the manifest's sha256 and
loads those bytes (backends/manifest.py); a torch or TVM build is code: run trusted ones only.
"""

from __future__ import annotations

import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
from graphspec.backends.build import BuildError, phase

from graphspec.io import atomic_write

Inputs = Mapping[str, np.ndarray]
# --dtype: weights and activations; norm/softmax statistics and matmul accumulators stay float32
# where PyTorch keeps them so (backends/tvm.py [Half precision]); every target takes it
DTYPES = {"fp32": "float32", "fp16": "float16", "bf16": "bfloat16"}


def check_dtype(dtype: str) -> str:
    """The TVM/numpy name of a --dtype (fp32 -> float32), or BuildError naming the choices."""
    if dtype not in DTYPES:
        raise BuildError(f"unknown dtype {dtype!r}; use one of {', '.join(DTYPES)}")
    return DTYPES[dtype]


def parse_target(target: str, arch: str | None = None) -> tuple[str, str | None]:
    """`cuda:sm_90` -> ("cuda", "sm_90"); `cuda` with `arch` -> ("cuda", arch); others (t, None).
    BuildError for an arch on a target other than cuda, two different archs, or an unknown one."""
    kind, colon, suffix = str(target).partition(":")
    if colon and not suffix.strip():
        raise BuildError(f"--target {target!r} names no architecture after the colon; write e.g. cuda:sm_90, or "
                         "plain cuda for the local GPU's (else sm_90)")
    if suffix and arch and suffix != arch:
        raise BuildError(f"--target {target} and --arch {arch} name two architectures; give one")
    arch = suffix or arch
    if arch and kind != "cuda":
        raise BuildError(f"--arch {arch} applies to --target cuda only, not {kind}")
    if kind == "cuda":
        from graphspec.backends.cuda import check_arch
        from graphspec.backends.tvm import ToolchainError

        try:
            arch = check_arch(arch) if arch else None
        except ToolchainError as e:
            raise BuildError(str(e)) from None
    return kind, arch


@dataclass
class Compiled:
    target: str
    run: Callable[[Inputs], list[np.ndarray]]
    save: Callable[[Path], dict[str, str]]
    info: dict[str, Any] = field(default_factory=dict)
    handle: Any = None  # the backend's own object (TVM: (executable, Lowered); ONNX: ModelProto)


def compile(graph, params: Mapping[str, np.ndarray], target: str, *, dynamic_batch: bool = False,
            tune: int = 0, tune_dir: str | Path | None = None, spec: Any = None,
            timings: dict[str, float] | None = None, log: Callable[[str], None] | None = None,
            dtype: str = "fp32", arch: str | None = None, tensor_cores: bool = True) -> Compiled:
    """`target` may carry the cuda arch (`cuda:sm_90`); `dtype` is fp32, fp16 or bf16;
    `tensor_cores=False` leaves a bf16 cuda build's matmuls to DLight's CUDA-core loops."""
    timings = {} if timings is None else timings
    target, arch = parse_target(target, arch)
    dt = check_dtype(dtype)
    if target == "onnx":
        return _onnx(graph, params, dynamic_batch, timings, log, dt)
    if target in ("llvm", "cuda"):
        return _tvm(graph, params, target, dynamic_batch, tune, tune_dir, timings, log, dt, arch, tensor_cores)
    if target == "torch":
        return _torch(graph, params, spec, timings, log, dt)
    raise BuildError(f"unknown target {target!r}")


# -- onnx ------------------------------------------------------------------------------------
def _onnx(graph, params, dynamic_batch, timings, log, dtype="float32") -> Compiled:
    from graphspec.backends import onnx as gx

    with phase(timings, "export", log):
        model = gx.export(graph, params, dynamic_batch=dynamic_batch, dtype=dtype)
    sess: list[Any] = []

    def run(inputs: Inputs) -> list[np.ndarray]:
        if not sess:
            sess.append(gx.session(model))
        return gx.run_session(sess[0], inputs)

    def save(d: Path) -> dict[str, str]:
        gx.save(model, d / "model.onnx")
        return {"model": "model.onnx"}

    ops = Counter(n.op_type for n in model.graph.node)
    info = {"onnx": {"opset": gx.OPSET, "nodes": len(model.graph.node), "initializers": len(model.graph.initializer),
                     "dtype": dtype, "ops": dict(ops.most_common())}}
    return Compiled("onnx", run, save, info, handle=model)


# -- tvm -------------------------------------------------------------------------------------
def _tvm(graph, params, target, dynamic_batch, tune, tune_dir, timings, log, dtype="float32",
         arch=None, tensor_cores=True) -> Compiled:
    from graphspec.backends import tvm as gt
    from graphspec.backends import weights

    with phase(timings, "lower", log):  # tuned: attention as matmuls, which MetaSchedule can tune
        low = gt.lower(graph, dynamic_batch=dynamic_batch, attention="matmul" if tune else "op", dtype=dtype)
    db, tinfo = None, None
    if tune:
        if tune_dir is None:
            raise BuildError("--tune needs a directory for the MetaSchedule database")
        with phase(timings, "tune", log), _progress(Path(tune_dir), tune, log):
            from graphspec.backends.metaschedule import tune as ms_tune

            db, tinfo = ms_tune(low, tune_dir, tune, kind=target, log=log)
    kernels: dict[str, dict[str, bytes]] = {}
    with phase(timings, "compile", log):
        ex, binfo = gt.build(low, target, database=db, arch=arch, bf16_tensor_cores=tensor_cores)
        if target == "cuda":  # [CUDA kernels ahead of time]: SASS and PTX for the arch, by nvcc
            from graphspec.backends.cuda import compile_kernels, ptx_target

            kernels = compile_kernels(ex, binfo["arch"])
            binfo["kernel_sources"] = sorted(kernels)
            binfo["ptx_targets"] = sorted({ptx_target(k["ptx"]) or "?" for k in kernels.values()})
    if tinfo is not None:
        tinfo.update(prim_funcs=binfo.pop("prim_funcs", None), applied=binfo.pop("tuned_funcs", None),
                     prepacked_weights=binfo.pop("prepacked_weights", None),
                     padded_matmuls=binfo.pop("padded_matmuls", None))
    runner: list[Any] = []

    def run(inputs: Inputs) -> list[np.ndarray]:
        if not runner:
            if target == "cuda" and not gt.has_cuda_device():
                raise BuildError("the cuda build cannot run here: no CUDA GPU (tvm.cuda().exist is False)")
            if kernels:
                from graphspec.backends.cuda import use_kernels

                use_kernels({k: v["cubin"] for k, v in kernels.items()})
            runner.append(gt.Runner(ex, low.params, params, device="cpu" if target == "llvm" else "cuda",
                                    dtype=dtype))
        return runner[0](*(inputs[n] for n in low.inputs))

    def save(d: Path) -> dict[str, str]:
        try:
            gt.export_library(ex, d / "model.so")
        except OSError:
            raise
        except Exception as e:  # TVM runs the C compiler: a full disk shows up as its error
            raise OSError(f"TVM could not write the library ({str(e).strip().splitlines()[-1][:300]})") from None
        weights.save(params, d / "weights.safetensors")  # float32 masters, cast to the build's dtype at load
        atomic_write(d / "model.relax.py", low.script())
        art = {"library": "model.so", "weights": "weights.safetensors", "relax": "model.relax.py"}
        for i, key in enumerate(sorted(kernels)):  # one cuda module per library in practice
            tag = "" if i == 0 else f".{i}"
            for fmt in ("cubin", "ptx"):
                atomic_write(d / f"model{tag}.{fmt}", kernels[key][fmt])
                art[f"{fmt}{tag}"] = f"model{tag}.{fmt}"
        return art

    info = {"tvm": {**binfo, "inputs": low.inputs, "params": low.params, "dynamic_batch": dynamic_batch,
                    "attention": low.attention, "dtype": dtype},
            **({"tuning": tinfo} if tinfo is not None else {})}
    return Compiled(target, run, save, info, handle=(ex, low))


class _progress:
    """Print MetaSchedule's progress (records in the database) while tuning runs."""

    def __init__(self, work_dir: Path, trials: int, log):
        self.path, self.trials, self.log = work_dir / "database_tuning_record.json", trials, log
        self.stop = threading.Event()

    def __enter__(self):
        if self.log:
            self.thread = threading.Thread(target=self._poll, daemon=True)
            self.thread.start()
        return self

    def _poll(self):
        last = -1
        while not self.stop.wait(5.0):
            try:
                n = sum(1 for _ in self.path.open())
            except OSError:
                continue
            if n != last:
                self.log(f"[tune] {n}/{self.trials} trials measured")
                last = n

    def __exit__(self, *exc):
        self.stop.set()
        return False


# -- torch -----------------------------------------------------------------------------------
def _torch(graph, params, spec, timings, log, dtype="float32") -> Compiled:
    from graphspec.backends import torch as gtorch

    with phase(timings, "codegen", log):
        gen = gtorch.generate(graph, spec, params, dtype=dtype)

    def run(inputs: Inputs) -> list[np.ndarray]:
        return gen.run(inputs)

    return Compiled("torch", run, gen.save, {"torch": gen.info})


# -- loading a build directory ---------------------------------------------------------------
def load(build_dir: Path, manifest: Mapping) -> Callable[[Inputs], list[np.ndarray]]:
    """A runner for a build directory whose manifest `manifest.read` has checked."""
    from graphspec.backends import manifest as mf

    target = manifest["target"]
    art = manifest["artifacts"]
    if target == "onnx":
        from graphspec.backends import onnx as gx

        data = mf.artifact(build_dir, manifest, "model")
        try:
            sess = gx.session(data)
        except gx.ExportError as e:
            raise BuildError(f"{build_dir / art['model']}: {e}") from None
        except Exception as e:  # onnxruntime's own exception types
            raise BuildError(f"{build_dir / art['model']} is not a model onnxruntime can load "
                             f"({str(e).strip().splitlines()[0][:300]}); {mf.REBUILD}") from None
        return lambda inputs: gx.run_session(sess, inputs)
    if target in ("llvm", "cuda"):
        return _load_tvm(build_dir, manifest, target)
    if target == "torch":
        from graphspec.backends import torch as gtorch

        return gtorch.load(build_dir, manifest)
    raise BuildError(f"unknown target {target!r} in {build_dir}")


def _load_tvm(build_dir: Path, manifest: Mapping, target: str):
    import tempfile

    from graphspec.backends import manifest as mf
    from graphspec.backends import tvm as gt
    from graphspec.backends import weights

    if target == "cuda" and not gt.has_cuda_device():
        raise BuildError("this is a cuda build and there is no CUDA GPU here to run it; "
                         "run it on a GPU machine, or build --target llvm")
    art, info = manifest["artifacts"], manifest["tvm"]
    lib_bytes = mf.artifact(build_dir, manifest, "library")
    where = build_dir / art["weights"]
    try:
        params = weights.load(mf.artifact(build_dir, manifest, "weights"))
    except ValueError as e:
        raise BuildError(f"{where}: {e}; {mf.REBUILD}") from None
    missing = [n for n in info["params"] if n not in params]
    unexpected = sorted(set(params) - set(info["params"]))
    if missing or unexpected:
        raise BuildError(f"{where} does not fit {build_dir / art['library']}: {len(missing)} missing "
                         f"keys {missing[:4]}, {len(unexpected)} unexpected keys {unexpected[:4]} "
                         f"(weights from another build?); {mf.REBUILD}")
    # the verified bytes, from a private copy: nothing can change between the check and dlopen
    with tempfile.TemporaryDirectory(prefix="graphspec-lib-") as d:
        (Path(d) / "model.so").write_bytes(lib_bytes)
        kernels = {}
        for role, key in zip(sorted(r for r in art if r.startswith("cubin")), info.get("kernel_sources") or [],
                             strict=False):
            kernels[key] = mf.artifact(build_dir, manifest, role)
        try:
            if kernels:
                from graphspec.backends.cuda import use_kernels

                use_kernels(kernels)
            lib = gt.load_library(Path(d) / "model.so")
            r = gt.Runner(lib, info["params"], params, device="cpu" if target == "llvm" else "cuda",
                          dtype=info.get("dtype", "float32"))
        except Exception as e:  # TVMError: a library or weights that do not fit
            raise BuildError(f"{build_dir} cannot be loaded by TVM ({str(e).strip().splitlines()[-1][:300]}); "
                             f"{mf.REBUILD}") from None
    return lambda inputs: r(*(inputs[n] for n in info["inputs"]))


def timed(run: Callable[[Inputs], list[np.ndarray]], inputs: Inputs, repeat: int = 5,
          budget_s: float = 20.0) -> tuple[list[np.ndarray], float]:
    """(outputs, median seconds) over up to `repeat` calls after one warm-up, within a budget."""
    out = run(inputs)
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < repeat and (not times or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        run(inputs)
        times.append(time.perf_counter() - t0)
    return out, float(np.median(times))
